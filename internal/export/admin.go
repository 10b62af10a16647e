package export

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

// Admin routes: the operator, with the admin key, lists the queued and
// running exports of every tenant (or of one) and cancels any of them,
// naming its tenant, so a runaway export is stopped without the tenant's
// key. The operator console's exports section calls them. Another
// tenant's export, or an export of a tenant that does not exist, is 404
// export_not_found, as on the tenant routes.

// AdminStatus is an export as the admin routes list it: the tenant's
// status and whose it is.
type AdminStatus struct {
	Tenant string `json:"tenant"`
	Status
}

func (a *API) adminList(w http.ResponseWriter, r *http.Request) {
	if !tenant.RequireAdmin(w, r) {
		return
	}
	q := r.URL.Query()
	limit := MaxList
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxList {
			problem.Send(w, problem.CodeInvalidRequest, "limit must be an integer from 1 to 100")
			return
		}
		limit = n
	}
	jobs, err := a.store.Active(r.Context(), q.Get("tenant"), limit)
	if err != nil {
		a.fail(w, "list active exports", err)
		return
	}
	out := struct {
		Exports []AdminStatus `json:"exports"`
	}{Exports: make([]AdminStatus, 0, len(jobs))}
	for _, j := range jobs {
		out.Exports = append(out.Exports, AdminStatus{Tenant: j.Tenant, Status: a.status(j)})
	}
	problem.WriteJSON(w, http.StatusOK, out)
}

func (a *API) adminCancel(w http.ResponseWriter, r *http.Request) {
	if !tenant.RequireAdmin(w, r) {
		return
	}
	tn := r.PathValue("tenant")
	j, err := a.store.Cancel(r.Context(), tn, r.PathValue("id"))
	switch {
	case errors.Is(err, ErrNotFound):
		problem.Send(w, problem.CodeExportNotFound, "no such export for tenant "+strconv.Quote(tn))
	case errors.Is(err, ErrFinished):
		problem.Write(w, problem.New(problem.CodeExportFinished, "the export has finished: "+j.State).With("state", j.State), 0)
	case err != nil:
		a.fail(w, "cancel export", err)
	default:
		a.log.Info("export cancelled by the admin key", "tenant", tn, "id", j.ID)
		problem.WriteJSON(w, http.StatusOK, AdminStatus{Tenant: j.Tenant, Status: a.status(j)})
	}
}

// Active returns the queued and running exports of tenant (every tenant
// when empty), oldest first, at most limit (≤ MaxList).
func (s *Store) Active(ctx context.Context, tenant string, limit int) ([]*Job, error) {
	limit = min(max(limit, 1), MaxList)
	return s.jobs(ctx, `SELECT `+jobCols+` FROM export_jobs
		WHERE state IN ('queued', 'running') AND ($1 = '' OR tenant_id = $1)
		ORDER BY created_at, id LIMIT $2`, tenant, limit)
}
