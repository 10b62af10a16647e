package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// ExportRequest asks for an export (POST /v1/exports). Kind is "entries"
// (of AccountID, or of every account), "transactions" or "accounts";
// From and To (To exclusive) are required for entries and transactions.
// Format is "csv" (default) or "jsonl", Compression "none" (default) or
// "gzip".
type ExportRequest struct {
	Kind        string     `json:"kind"`
	AccountID   string     `json:"account_id,omitempty"`
	From        *time.Time `json:"from,omitempty"`
	To          *time.Time `json:"to,omitempty"`
	Format      string     `json:"format,omitempty"`
	Compression string     `json:"compression,omitempty"`
}

// Export is an export's status. State is queued, running, succeeded,
// failed, cancelled or expired; Manifest is set once it succeeded.
type Export struct {
	ID              string          `json:"id"`
	Kind            string          `json:"kind"`
	AccountID       string          `json:"account_id,omitempty"`
	From            *time.Time      `json:"from,omitempty"`
	To              *time.Time      `json:"to,omitempty"`
	Format          string          `json:"format"`
	Compression     string          `json:"compression"`
	State           string          `json:"state"`
	Queue           string          `json:"queue"`
	Cutoff          time.Time       `json:"cutoff"`
	RowsWritten     int64           `json:"rows_written"`
	RowsEstimated   int64           `json:"rows_estimated"`
	Bytes           int64           `json:"bytes"`
	ProgressPercent float64         `json:"progress_percent"`
	Attempts        int             `json:"attempts"`
	CreatedAt       time.Time       `json:"created_at"`
	StartedAt       *time.Time      `json:"started_at,omitempty"`
	FinishedAt      *time.Time      `json:"finished_at,omitempty"`
	Error           string          `json:"error,omitempty"`
	StatusURL       string          `json:"status_url"`
	Manifest        *ExportManifest `json:"manifest,omitempty"`
}

// Finished reports whether the export reached a final state.
func (e *Export) Finished() bool { return e.State != "queued" && e.State != "running" }

// ExportManifest describes a succeeded export's file. DownloadURL is
// signed and valid until ExpiresAt; read the status again for a fresh one.
type ExportManifest struct {
	Rows        int64          `json:"rows"`
	Bytes       int64          `json:"bytes"`
	SHA256      string         `json:"sha256"`
	Columns     []ExportColumn `json:"columns"`
	ContentType string         `json:"content_type"`
	FileName    string         `json:"file_name"`
	DownloadURL string         `json:"download_url"`
	ExpiresAt   time.Time      `json:"download_url_expires_at"`
}

// ExportColumn is one column of an export file.
type ExportColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// CreateExport queues an export, or returns the queued or running export
// of an identical request (so a retry never makes a second one).
func (c *Client) CreateExport(ctx context.Context, in ExportRequest) (*Export, error) {
	var out Export
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/exports", body: in, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Export reads an export's status.
func (c *Client) Export(ctx context.Context, id string) (*Export, error) {
	var out Export
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/exports/" + seg(id), idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Exports lists the tenant's newest exports, at most limit (1 to 100; 0
// means 20).
func (c *Client) Exports(ctx context.Context, limit int) ([]Export, error) {
	q := url.Values{}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Exports []Export `json:"exports"`
	}
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/exports", query: q, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return out.Exports, nil
}

// CancelExport cancels a queued or running export; a finished one is
// ErrExportFinished.
func (c *Client) CancelExport(ctx context.Context, id string) (*Export, error) {
	var out Export
	if _, err := c.do(ctx, &request{method: http.MethodDelete, path: "/v1/exports/" + seg(id), idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AdminExport is an export with the tenant it belongs to, as the admin
// routes answer.
type AdminExport struct {
	Tenant string `json:"tenant"`
	Export
}

// ActiveExports lists the queued and running exports of every tenant (or
// of tenant, when not empty), oldest first, at most limit (1 to 100; 0
// means 100). It needs the admin key.
func (c *Client) ActiveExports(ctx context.Context, tenant string, limit int) ([]AdminExport, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Exports []AdminExport `json:"exports"`
	}
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/admin/exports", query: q, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return out.Exports, nil
}

// CancelTenantExport cancels tenant's queued or running export with the
// admin key; a finished one is ErrExportFinished, another tenant's
// ErrExportNotFound.
func (c *Client) CancelTenantExport(ctx context.Context, tenant, id string) (*AdminExport, error) {
	var out AdminExport
	path := "/v1/admin/tenants/" + seg(tenant) + "/exports/" + seg(id)
	if _, err := c.do(ctx, &request{method: http.MethodDelete, path: path, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DownloadExport writes a succeeded export's file to path. A partial file
// already at path is resumed with a Range request (its bytes are hashed
// first), and the whole file is checked against the manifest's SHA-256;
// on a mismatch the file is removed. progress, when set, is called with
// the bytes written so far.
func (c *Client) DownloadExport(ctx context.Context, e *Export, path string, progress func(done, total int64)) error {
	if e.Manifest == nil {
		return fmt.Errorf("bulwark: export %s is %s: nothing to download", e.ID, e.State)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	have, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if have > e.Manifest.Bytes {
		return fmt.Errorf("bulwark: %s holds %d bytes, more than the export's %d: not a partial download of it", path, have, e.Manifest.Bytes)
	}
	if have < e.Manifest.Bytes {
		if err := c.fetchRange(ctx, e, have, io.MultiWriter(f, h), progress); err != nil {
			return err
		}
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != e.Manifest.SHA256 {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("bulwark: downloaded file's SHA-256 %s differs from the manifest's %s; removed", sum, e.Manifest.SHA256)
	}
	return f.Sync()
}

// fetchRange streams the file from byte offset into w.
func (c *Client) fetchRange(ctx context.Context, e *Export, offset int64, w io.Writer, progress func(done, total int64)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+e.Manifest.DownloadURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", c.auth)
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		req.Header.Set("If-Range", `"`+e.Manifest.SHA256+`"`)
	}
	resp, err := c.cfg.hc.Do(req)
	if err != nil {
		return fmt.Errorf("bulwark: download %s: %w", e.ID, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
	case resp.StatusCode == http.StatusOK && offset == 0:
	case resp.StatusCode >= 300:
		var p problemBody
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = json.Unmarshal(data, &p) // a body that is no problem still yields an *Error
		return p.toError(resp.StatusCode, resp.Header)
	default:
		return fmt.Errorf("bulwark: download %s: HTTP %d to a request from byte %d", e.ID, resp.StatusCode, offset)
	}
	done := offset
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			done += int64(n)
			if progress != nil {
				progress(done, e.Manifest.Bytes)
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("bulwark: download %s at byte %d (run again to resume): %w", e.ID, done, rerr)
		}
	}
}
