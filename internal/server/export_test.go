package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	bulwark "github.com/bulwark-ledger/bulwark/client"
	"github.com/bulwark-ledger/bulwark/internal/export/exporttest"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

// TestExportThroughServe: an export through the whole front door
// (authentication, admission, routes) with the public client, run by the
// exports role of the same process: create, follow, download with a
// checked SHA-256, resume of a partial download, tenant isolation,
// metrics.
func TestExportThroughServe(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	admin, url := startServerIn(t, dataDir, server.RoleAPI, server.RoleExports)
	acme, other := newTenant(t, admin, "acme"), newTenant(t, admin, "other")
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := exporttest.Seed(context.Background(), pool, "acme", 13, 4000); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := bulwark.New(acme.base, acme.key, bulwark.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	from, to := exporttest.Base, exporttest.Base.AddDate(0, 1, 0)
	req := bulwark.ExportRequest{Kind: "entries", From: &from, To: &to, Format: "csv", Compression: "gzip"}
	e, err := c.CreateExport(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.CreateExport(ctx, req); err != nil || again.ID != e.ID {
		t.Fatalf("identical request: %v, id %v (want %s)", err, again, e.ID)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !e.Finished() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if e, err = c.Export(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	if e.State != "succeeded" || e.Manifest == nil || e.Manifest.Rows != 8000 {
		t.Fatalf("export: %+v", e)
	}
	path := filepath.Join(t.TempDir(), e.Manifest.FileName)
	// A partial file first: the download resumes it with a Range request.
	full, err := os.ReadFile(filepath.Join(dataDir, "exports", "acme", e.Manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, full[:len(full)/3], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.DownloadExport(ctx, e, path, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != e.Manifest.SHA256 || int64(len(got)) != e.Manifest.Bytes {
		t.Fatalf("downloaded %d bytes, manifest %d", len(got), e.Manifest.Bytes)
	}
	// Another tenant: no such export, on every route.
	oc, err := bulwark.New(other.base, other.key, bulwark.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	if _, err := oc.Export(ctx, e.ID); !errors.Is(err, bulwark.ErrExportNotFound) {
		t.Fatalf("other tenant's read: %v", err)
	}
	if err := oc.DownloadExport(ctx, e, filepath.Join(t.TempDir(), "x"), nil); !errors.Is(err, bulwark.ErrExportNotFound) {
		t.Fatalf("other tenant's download: %v", err)
	}
	if _, err := c.CancelExport(ctx, e.ID); !errors.Is(err, bulwark.ErrExportFinished) {
		t.Fatalf("cancel of a finished export: %v", err)
	}
	// The admin key acts for no tenant.
	if r := admin.do(t, "GET", "/v1/exports/"+e.ID, nil); r.status != 403 {
		t.Fatalf("admin key: %d %s", r.status, r.raw)
	}
	m := admin.do(t, "GET", "/metrics", nil)
	for _, name := range []string{"bulwark_export_rows_total", "bulwark_export_queue_depth", "bulwark_export_chunk_seconds",
		"bulwark_export_pool_max_conns", `/v1/exports"`} {
		if !strings.Contains(string(m.raw), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}
