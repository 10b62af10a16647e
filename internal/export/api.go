package export

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

// API serves exports over HTTP for the tenant of the request's API key,
// and the admin routes (admin.go) for the admin key.
type API struct {
	store    *Store
	dir      string
	signer   *Signer
	settings Settings
	log      *slog.Logger
	now      func() time.Time
}

// NewAPI returns the export routes over store, serving files from dir (the
// workers' Config.Dir, shared when they run in another process). It loads
// (or creates) the link signing key from pool.
func NewAPI(ctx context.Context, pool *pgxpool.Pool, store *Store, dir string, settings Settings, log *slog.Logger) (*API, error) {
	key, err := loadSecret(ctx, pool)
	if err != nil {
		return nil, err
	}
	return &API{store: store, dir: dir, signer: NewSigner(key), settings: settings, log: log, now: time.Now}, nil
}

// Register mounts the export routes on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/exports", a.create)
	mux.HandleFunc("GET /v1/exports", a.list)
	mux.HandleFunc("GET /v1/exports/{id}", a.get)
	mux.HandleFunc("DELETE /v1/exports/{id}", a.cancel)
	mux.HandleFunc("GET /v1/exports/{id}/download", a.download)
	mux.HandleFunc("GET /v1/admin/exports", a.adminList)
	mux.HandleFunc("DELETE /v1/admin/tenants/{tenant}/exports/{id}", a.adminCancel)
}

// Status is the API's view of an export.
type Status struct {
	ID              string     `json:"id"`
	Kind            string     `json:"kind"`
	AccountID       string     `json:"account_id,omitempty"`
	From            *time.Time `json:"from,omitempty"`
	To              *time.Time `json:"to,omitempty"`
	Format          string     `json:"format"`
	Compression     string     `json:"compression"`
	State           string     `json:"state"`
	Queue           string     `json:"queue"`
	Cutoff          time.Time  `json:"cutoff"`
	RowsWritten     int64      `json:"rows_written"`
	RowsEstimated   int64      `json:"rows_estimated"`
	Bytes           int64      `json:"bytes"`
	ProgressPercent float64    `json:"progress_percent"`
	Attempts        int        `json:"attempts"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	Error           string     `json:"error,omitempty"`
	StatusURL       string     `json:"status_url"`
	Manifest        *Manifest  `json:"manifest,omitempty"`
}

// Manifest describes the file of a succeeded export.
type Manifest struct {
	Rows        int64     `json:"rows"`
	Bytes       int64     `json:"bytes"`
	SHA256      string    `json:"sha256"`
	Columns     []Column  `json:"columns"`
	ContentType string    `json:"content_type"`
	FileName    string    `json:"file_name"`
	DownloadURL string    `json:"download_url"`
	ExpiresAt   time.Time `json:"download_url_expires_at"`
}

func (a *API) status(j *Job) Status {
	s := Status{ID: j.ID, Kind: j.Request.Kind, AccountID: j.Request.AccountID, From: j.Request.From, To: j.Request.To,
		Format: j.Request.Format, Compression: j.Request.Compression, State: j.State, Queue: j.Queue, Cutoff: j.Cutoff,
		RowsWritten: j.RowsWritten, RowsEstimated: j.RowsEstimated, Bytes: j.FileOffset, Attempts: j.Attempts,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, Error: j.Error,
		StatusURL: "/v1/exports/" + j.ID}
	switch {
	case j.State == StateSucceeded:
		s.ProgressPercent = 100
		ttl := time.Duration(a.settings.Int(j.Tenant, control.KeyExportLinkTTLSeconds)) * time.Second
		exp := a.now().Add(ttl).Truncate(time.Second)
		s.Manifest = &Manifest{Rows: j.RowsWritten, Bytes: j.FileOffset, SHA256: j.SHA256,
			Columns: Columns(j.Request.Kind), ContentType: j.contentType(), FileName: j.fileName(),
			DownloadURL: "/v1/exports/" + j.ID + "/download?" + a.signer.Link(j.Tenant, j.ID, exp), ExpiresAt: exp}
	case j.RowsEstimated > 0:
		// An estimate: never 100 before the end.
		s.ProgressPercent = math.Min(99, math.Round(float64(j.RowsWritten)*1000/float64(j.RowsEstimated))/10)
	}
	return s
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	body, de := problem.ReadBody(w, r, maxRequestBytes)
	if de != nil {
		problem.Write(w, de.Problem(), 0)
		return
	}
	req, p := DecodeRequest(body)
	if p != nil {
		problem.Write(w, p, 0)
		return
	}
	j, created, err := a.store.Create(r.Context(), tn, req)
	switch {
	case errors.Is(err, ErrAccountAbsent):
		problem.Write(w, problem.New(problem.CodeAccountNotFound, "no such account for this tenant").With("pointer", "/account_id"), 0)
		return
	case errors.Is(err, ErrTooMany):
		problem.Write(w, problem.New(problem.CodeTooManyExports, err.Error()), 10*time.Second)
		return
	case err != nil:
		a.fail(w, "create export", err)
		return
	}
	w.Header().Set("Location", "/v1/exports/"+j.ID)
	st := http.StatusAccepted
	if !created {
		st = http.StatusOK // the same export, queued or running already
	}
	problem.WriteJSON(w, st, a.status(j))
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	j, ok := a.job(w, r)
	if ok {
		problem.WriteJSON(w, http.StatusOK, a.status(j))
	}
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	limit := 20
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxList {
			problem.Send(w, problem.CodeInvalidRequest, "limit must be an integer from 1 to 100")
			return
		}
		limit = n
	}
	jobs, err := a.store.List(r.Context(), tn, limit)
	if err != nil {
		a.fail(w, "list exports", err)
		return
	}
	out := struct {
		Exports []Status `json:"exports"`
	}{Exports: make([]Status, 0, len(jobs))}
	for _, j := range jobs {
		out.Exports = append(out.Exports, a.status(j))
	}
	problem.WriteJSON(w, http.StatusOK, out)
}

func (a *API) cancel(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	j, err := a.store.Cancel(r.Context(), tn, r.PathValue("id"))
	switch {
	case errors.Is(err, ErrNotFound):
		problem.Send(w, problem.CodeExportNotFound, "no such export for this tenant")
	case errors.Is(err, ErrFinished):
		problem.Write(w, problem.New(problem.CodeExportFinished, "the export has finished: "+j.State).With("state", j.State), 0)
	case err != nil:
		a.fail(w, "cancel export", err)
	default:
		problem.WriteJSON(w, http.StatusOK, a.status(j))
	}
}

// job loads the request's export; on failure it has answered.
func (a *API) job(w http.ResponseWriter, r *http.Request) (*Job, bool) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return nil, false
	}
	j, err := a.store.Get(r.Context(), tn, r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		problem.Send(w, problem.CodeExportNotFound, "no such export for this tenant")
		return nil, false
	}
	if err != nil {
		a.fail(w, "read export", err)
		return nil, false
	}
	return j, true
}

// downloadWriteMax bounds one download's write time: the server's write
// timeout (60 s) is for API answers; a file of gigabytes needs longer,
// and Range requests resume a download cut short.
const downloadWriteMax = time.Hour

func (a *API) download(w http.ResponseWriter, r *http.Request) {
	j, ok := a.job(w, r)
	if !ok {
		return
	}
	switch err := a.signer.CheckLink(j.Tenant, j.ID, r.URL.Query(), a.now()); {
	case errors.Is(err, ErrLinkExpired):
		problem.Send(w, problem.CodeDownloadLinkExpired, "the download link has expired; read the export's status for a fresh one")
		return
	case err != nil:
		problem.Send(w, problem.CodeDownloadLinkInvalid, "the download link is malformed or its signature does not match")
		return
	}
	switch j.State {
	case StateSucceeded:
	case StateExpired:
		problem.Send(w, problem.CodeExportExpired, "the export's file was removed by retention")
		return
	default:
		problem.Write(w, problem.New(problem.CodeExportNotReady, "the export has not succeeded: "+j.State).With("state", j.State), 0)
		return
	}
	f, err := os.Open(filePath(a.dir, j))
	if errors.Is(err, os.ErrNotExist) {
		problem.Send(w, problem.CodeExportExpired, "the export's file is gone (retention, or another export directory)")
		return
	}
	if err != nil {
		a.fail(w, "open export file", err)
		return
	}
	defer f.Close()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(downloadWriteMax)) // unsupported: the server's timeout stays
	h := w.Header()
	h.Set("Content-Type", j.contentType())
	h.Set("ETag", `"`+j.SHA256+`"`)
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", `attachment; filename="`+j.fileName()+`"`)
	modified := time.Time{}
	if j.FinishedAt != nil {
		modified = *j.FinishedAt
	}
	http.ServeContent(w, r, "", modified, f)
}

func (a *API) fail(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, context.Canceled) {
		return // the client is gone
	}
	a.log.Error(what, "err", err)
	problem.Write(w, problem.New(problem.CodeReadFailed, "the request failed; nothing was changed, retry"), time.Second)
}
