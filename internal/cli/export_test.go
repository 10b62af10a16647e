package cli_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/cli"
	"github.com/bulwark-ledger/bulwark/internal/export/exporttest"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/server"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

// TestExportCommands runs bulwark export create --wait, list, status,
// download and cancel against a server running the api and exports roles.
func TestExportCommands(t *testing.T) {
	url := pgtest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{Addr: "127.0.0.1:0", PostgresURL: url, AdminKey: "test-admin",
			Roles: []string{server.RoleAPI, server.RoleExports}, DataDir: t.TempDir(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(a string) { ready <- a }})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	}()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ts := tenant.NewStore(pool, "test-admin")
	if err := ts.CreateTenant(context.Background(), "acme", ""); err != nil {
		t.Fatal(err)
	}
	_, key, err := ts.CreateKey(context.Background(), "acme", tenant.KeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := exporttest.Seed(context.Background(), pool, "acme", 5, 700); err != nil {
		t.Fatal(err)
	}
	runAs := func(k string, args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		root := cli.Root()
		root.SetOut(&out)
		root.SetErr(io.Discard)
		root.SetArgs(append(args, "--server", "http://"+addr, "--key", k))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	run := func(args ...string) (string, error) { return runAs(key, args...) }
	admin := func(args ...string) (string, error) { return runAs("test-admin", args...) }
	out, err := run("export", "create", "--kind", "transactions", "--from", "2026-01-01", "--to", "2026-02-01",
		"--format", "jsonl", "--compression", "gzip", "--wait")
	if err != nil || !strings.Contains(out, `"state": "succeeded"`) || !strings.Contains(out, `"rows": 700`) {
		t.Fatalf("create --wait: %v\n%s", err, out)
	}
	id := between(out, `"id": "`, `"`)
	if out, err := run("export", "list"); err != nil || !strings.Contains(out, id) || !strings.Contains(out, "succeeded") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := run("export", "status", id, "--follow"); err != nil || !strings.Contains(out, "download_url") {
		t.Fatalf("status --follow: %v\n%s", err, out)
	}
	file := filepath.Join(t.TempDir(), "tx.jsonl.gz")
	if out, err := run("export", "download", id, "-o", file); err != nil || !strings.Contains(out, "700 rows") {
		t.Fatalf("download: %v\n%s", err, out)
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("downloaded file: %v", err)
	}
	if _, err := run("export", "cancel", id); err == nil || !strings.Contains(err.Error(), "export_finished") {
		t.Fatalf("cancel of a finished export: %v", err)
	}
	if _, err := run("export", "create", "--kind", "ledgers"); err == nil || !strings.Contains(err.Error(), "invalid_request") {
		t.Fatalf("create of an unknown kind: %v", err)
	}
	// The admin commands: a tenant key is refused; with the admin key the
	// finished export is not active, cannot be cancelled, and is not
	// another tenant's.
	if _, err := run("export", "active"); err == nil || !strings.Contains(err.Error(), "admin_key_required") {
		t.Fatalf("active with a tenant key: %v", err)
	}
	if out, err := admin("export", "active", "--tenant", "acme"); err != nil || !strings.HasPrefix(out, "TENANT") || strings.Contains(out, id) {
		t.Fatalf("active: %v\n%s", err, out)
	}
	if _, err := admin("export", "admin-cancel", "acme", id); err == nil || !strings.Contains(err.Error(), "export_finished") {
		t.Fatalf("admin-cancel of a finished export: %v", err)
	}
	if _, err := admin("export", "admin-cancel", "other", id); err == nil || !strings.Contains(err.Error(), "export_not_found") {
		t.Fatalf("admin-cancel naming another tenant: %v", err)
	}
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	return s[:strings.Index(s, to)]
}
