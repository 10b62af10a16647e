package ledger

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

// API serves the ledger over HTTP. Every handler acts for the tenant of the
// request's API key.
type API struct {
	Store   *Store
	Pipe    *Pipeline
	Journal *Journal
	Log     *slog.Logger
	// AccountReads, when set, runs the account reads of GET
	// /v1/accounts/{id} (the edge coalesces them and may answer a stale
	// copy when the read is shed or the database fails). Nil reads the
	// store directly.
	AccountReads AccountReads
}

// AccountReads runs read for (tenant, id), possibly sharing it with
// concurrent identical reads. stale reports an answer from a fallback copy
// rather than from read (the handler marks it StaleHeader: true). An error
// that is a problem.Answer (an admission rejection) is answered as such.
type AccountReads func(ctx context.Context, tenant, id string, read func(context.Context) (Account, error)) (acc Account, stale bool, err error)

// StaleHeader marks an answer served from a stale copy.
const StaleHeader = "Bulwark-Stale"

// Register mounts the ledger routes on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/accounts", a.createAccount)
	mux.HandleFunc("GET /v1/accounts/{id}", a.getAccount)
	mux.HandleFunc("GET /v1/accounts/{id}/balance", a.getBalance)
	mux.HandleFunc("GET /v1/accounts/{id}/entries", a.getEntries)
	mux.HandleFunc("POST /v1/transactions", a.postTransaction)
	mux.HandleFunc("POST /v1/transactions/batch", a.postBatch)
	mux.HandleFunc("GET /v1/transactions/{id}", a.getTransaction)
	mux.HandleFunc("GET /v1/transactions", a.getTransactionByKey)
	mux.HandleFunc("GET /v1/journal/{id}", a.getJournal)
}

func (a *API) createAccount(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	body, ok := readBody(w, r, 64<<10)
	if !ok {
		return
	}
	in, bad := DecodeAccount(body)
	if bad != nil {
		sendError(w, bad)
		return
	}
	acc, created, err := a.Store.CreateAccount(r.Context(), tn, in)
	if err != nil {
		a.fail(w, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	problem.WriteJSON(w, status, acc)
}

func (a *API) getAccount(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	read := func(ctx context.Context) (Account, error) { return a.Store.Account(ctx, tn, id) }
	if a.AccountReads == nil {
		acc, err := read(r.Context())
		if err != nil {
			a.failRead(w, err)
			return
		}
		problem.WriteJSON(w, http.StatusOK, acc)
		return
	}
	acc, stale, err := a.AccountReads(r.Context(), tn, id, read)
	if err != nil {
		a.failRead(w, err)
		return
	}
	if stale {
		w.Header().Set(StaleHeader, "true")
	}
	problem.WriteJSON(w, http.StatusOK, acc)
}

func (a *API) getBalance(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	at := time.Now()
	if s := r.URL.Query().Get("at"); s != "" {
		var err error
		if at, err = time.Parse(time.RFC3339Nano, s); err != nil {
			problem.Send(w, CodeInvalid, "at must be an RFC 3339 time")
			return
		}
	}
	b, err := a.Store.BalanceAt(r.Context(), tn, r.PathValue("id"), at)
	if err != nil {
		a.failRead(w, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, b)
}

func (a *API) getEntries(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	after, err1 := intParam(q.Get("after_seq"), 0)
	limit, err2 := intParam(q.Get("limit"), 100)
	if err1 != nil || err2 != nil || after < 0 || limit < 1 || limit > MaxPageSize {
		problem.Send(w, CodeInvalid, "after_seq must be >= 0 and limit 1 to "+strconv.Itoa(MaxPageSize))
		return
	}
	es, err := a.Store.Entries(r.Context(), tn, r.PathValue("id"), after, int(limit))
	if err != nil {
		a.failRead(w, err)
		return
	}
	page := map[string]any{"entries": es}
	if len(es) == int(limit) {
		page["next_after_seq"] = es[len(es)-1].Seq
	}
	problem.WriteJSON(w, http.StatusOK, page)
}

func intParam(s string, def int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

func (a *API) postTransaction(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	body, ok := readBody(w, r, 64<<10)
	if !ok {
		return
	}
	b, bad := DecodeTransaction(body)
	if bad != nil {
		sendError(w, bad)
		return
	}
	if wantsAsync(r) {
		a.accept(w, r, tn, b)
		return
	}
	res, err := a.Pipe.Submit(r.Context(), tn, b)
	if err != nil {
		a.fail(w, err)
		return
	}
	if res[0].Err != nil {
		sendError(w, res[0].Err)
		return
	}
	status := http.StatusCreated
	if res[0].Replayed {
		status = http.StatusOK
		w.Header().Set("Idempotent-Replayed", "true")
	}
	problem.WriteJSON(w, status, res[0].Transaction)
}

func (a *API) postBatch(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	body, ok := readBody(w, r, MaxBodyBytes)
	if !ok {
		return
	}
	b, bad := DecodeBatch(body)
	if bad != nil {
		sendError(w, bad)
		return
	}
	if wantsAsync(r) {
		a.accept(w, r, tn, b)
		return
	}
	res, err := a.Pipe.Submit(r.Context(), tn, b)
	if err != nil {
		a.fail(w, err)
		return
	}
	for i := range res {
		if res[i].Err != nil {
			res[i].Err.Index = i
		}
	}
	problem.WriteJSON(w, http.StatusOK, map[string]any{"results": res})
}

// wantsAsync reports RFC 7240 "Prefer: respond-async".
func wantsAsync(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "respond-async") {
				return true
			}
		}
	}
	return false
}

func (a *API) accept(w http.ResponseWriter, r *http.Request, tn string, b Batch) {
	e, _, err := a.Journal.Accept(r.Context(), tn, b)
	if err != nil {
		a.fail(w, err)
		return
	}
	url := "/v1/journal/" + e.ID
	w.Header().Set("Location", url)
	w.Header().Set("Preference-Applied", "respond-async")
	status := http.StatusAccepted
	if e.State != JournalAccepted {
		status = http.StatusOK
	}
	problem.WriteJSON(w, status, map[string]any{"id": e.ID, "state": e.State, "status_url": url,
		"accepted_at": e.AcceptedAt, "results": e.Results})
}

func (a *API) getJournal(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	e, err := a.Journal.Status(r.Context(), tn, r.PathValue("id"))
	if err != nil {
		a.failRead(w, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, e)
}

func (a *API) getTransaction(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	t, err := a.Store.Transaction(r.Context(), tn, r.PathValue("id"), false)
	if err != nil {
		a.failRead(w, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, t)
}

func (a *API) getTransactionByKey(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	key := r.URL.Query().Get("idempotency_key")
	if key == "" {
		problem.Send(w, CodeInvalid, "idempotency_key query parameter is required")
		return
	}
	if err := checkText("idempotency_key", key); err != nil {
		sendError(w, err)
		return
	}
	t, err := a.Store.Transaction(r.Context(), tn, key, true)
	if err != nil {
		a.failRead(w, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, t)
}

// readBody reads a JSON request body (problem.ReadBody); on failure it has
// answered the request.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, de := problem.ReadBody(w, r, limit)
	if de != nil {
		sendError(w, fromDecodeError(de))
		return nil, false
	}
	return body, true
}

// failRead maps an error of a read route. A read changes nothing, so an
// unexpected failure is read_failed (retry freely), never commit_failed.
func (a *API) failRead(w http.ResponseWriter, err error) {
	var le *Error
	var pa problem.Answer
	switch {
	case errors.As(err, &le):
		sendError(w, le)
	case errors.As(err, &pa):
		p, retry := pa.Answer()
		problem.Write(w, p, retry)
	case errors.Is(err, context.Canceled):
	default:
		a.Log.Error("ledger read", "err", err)
		problem.Write(w, problem.New(CodeReadFailed,
			"the read failed; nothing was changed, retry"), time.Second)
	}
}

// fail maps an error of a write route to its problem response.
func (a *API) fail(w http.ResponseWriter, err error) {
	var le *Error
	switch {
	case errors.As(err, &le):
		sendError(w, le)
	case errors.Is(err, ErrOverloaded):
		problem.Write(w, problem.New(CodeOverloaded,
			"the commit pipeline is full; retry with the same idempotency keys").With("stage", "pipeline"), time.Second)
	case errors.Is(err, ErrClosed):
		problem.Write(w, problem.New(problem.CodeShuttingDown,
			"this process is shutting down; retry with the same idempotency keys"), time.Second)
	case errors.Is(err, context.Canceled):
		// The client is gone; nobody reads the answer.
	default:
		a.Log.Error("ledger request", "err", err)
		problem.Write(w, problem.New(problem.CodeCommitFailed,
			"the transaction may or may not have committed; retry with the same idempotency keys"), time.Second)
	}
}

func sendError(w http.ResponseWriter, e *Error) {
	p := problem.New(e.Code, e.Detail)
	if e.Index >= 0 {
		p.With("index", e.Index)
	}
	if e.Pointer != "" {
		p.With("pointer", e.Pointer)
	}
	problem.Write(w, p, 0)
}
