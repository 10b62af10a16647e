package features

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

// Body limits of the routes.
const (
	definitionBodyMax = 64 << 10
	eventsBodyMax     = 4 << 20 // 1,000 events of ~4 KiB
	readBodyMax       = 64 << 10
	// MaxReadEntities bounds the batch read (100 entities × 20 features ×
	// a few windows: one query, well under a millisecond of merging).
	MaxReadEntities = 100
)

// API serves the features routes; every one acts for the tenant of the
// request's key.
type API struct {
	e   *Engine
	log *slog.Logger
}

// API returns the HTTP API of the engine.
func (e *Engine) API() *API { return &API{e: e, log: e.cfg.Logger} }

// Register mounts the routes on mux:
//
//	POST   /v1/features/definitions          define or change a feature
//	GET    /v1/features/definitions          live features
//	GET    /v1/features/definitions/{name}   every version of one feature
//	DELETE /v1/features/definitions/{name}   retire it
//	POST   /v1/events                        tenant events (one or {"events":[…]}) → 202
//	GET    /v1/features/{type}/{id}          values of one entity
//	POST   /v1/features/read                 values of up to 100 entities
//	POST   /v1/features/evaluate             one event's entities, the event included
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/features/definitions", a.define)
	mux.HandleFunc("GET /v1/features/definitions", a.list)
	mux.HandleFunc("GET /v1/features/definitions/{name}", a.show)
	mux.HandleFunc("DELETE /v1/features/definitions/{name}", a.delete)
	mux.HandleFunc("POST /v1/events", a.events)
	mux.HandleFunc("GET /v1/features/{type}/{id}", a.read)
	mux.HandleFunc("POST /v1/features/read", a.readBatch)
	mux.HandleFunc("POST /v1/features/evaluate", a.evaluate)
}

// sendDecode answers a refused body: a *problem.DecodeError as itself,
// anything else as invalid_request.
func sendDecode(w http.ResponseWriter, err error) {
	var de *problem.DecodeError
	if errors.As(err, &de) {
		problem.Write(w, de.Problem(), 0)
		return
	}
	problem.Send(w, problem.CodeInvalidRequest, err.Error())
}

func (a *API) fail(w http.ResponseWriter, err error, write bool) {
	switch {
	case errors.Is(err, ErrNotFound):
		problem.Send(w, problem.CodeFeatureNotFound, "no such feature")
	case errors.Is(err, ErrTooManyFeatures):
		problem.Send(w, problem.CodeTooManyFeatures, err.Error())
	case errors.Is(err, ErrEventLog):
		a.log.Warn("features: event log", "err", err)
		problem.Write(w, problem.New(problem.CodeEventLogUnavailable, "the event log did not acknowledge; resend with the same ids"), time.Second)
	case errors.Is(err, context.Canceled):
		problem.Send(w, problem.CodeShuttingDown, "request canceled")
	case write:
		a.log.Error("features: write", "err", err)
		problem.Write(w, problem.New(problem.CodeCommitFailed, "database error; retry"), time.Second)
	default:
		a.log.Error("features: read", "err", err)
		problem.Write(w, problem.New(problem.CodeReadFailed, "database error; retry"), time.Second)
	}
}

func (a *API) define(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	body, de := problem.ReadBody(w, r, definitionBodyMax)
	if de != nil {
		problem.Write(w, de.Problem(), 0)
		return
	}
	if de := problem.ScanBody(body); de != nil {
		problem.Write(w, de.Problem(), 0)
		return
	}
	def, err := spec.DecodeDefinition(body)
	if err != nil {
		sendDecode(w, err)
		return
	}
	v, created, err := a.e.store.Define(r.Context(), tn, def)
	if err != nil {
		a.fail(w, err, true)
		return
	}
	a.e.forget(tn)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	problem.WriteJSON(w, status, v)
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	vs, err := a.e.store.List(r.Context(), tn)
	if err != nil {
		a.fail(w, err, false)
		return
	}
	problem.WriteJSON(w, http.StatusOK, map[string]any{"definitions": vs})
}

func (a *API) show(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	vs, err := a.e.store.Show(r.Context(), tn, r.PathValue("name"))
	if err != nil {
		a.fail(w, err, false)
		return
	}
	problem.WriteJSON(w, http.StatusOK, map[string]any{"name": r.PathValue("name"), "versions": vs})
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	if err := a.e.store.Delete(r.Context(), tn, r.PathValue("name")); err != nil {
		a.fail(w, err, true)
		return
	}
	a.e.forget(tn)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) events(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	body, de := problem.ReadBody(w, r, eventsBodyMax)
	if de != nil {
		problem.Write(w, de.Problem(), 0)
		return
	}
	if de := problem.ScanBody(body); de != nil {
		problem.Write(w, de.Problem(), 0)
		return
	}
	evs, err := spec.DecodeEvents(body)
	if err != nil {
		sendDecode(w, err)
		return
	}
	if err := a.e.Produce(r.Context(), tn, evs, time.Now()); err != nil {
		a.fail(w, err, true)
		return
	}
	problem.WriteJSON(w, http.StatusAccepted, map[string]any{"accepted": len(evs)})
}

func (a *API) read(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	ref := EntityRef{Type: r.PathValue("type"), ID: r.PathValue("id")}
	if problem.HasNUL(ref.Type) || problem.HasNUL(ref.ID) {
		problem.Send(w, problem.CodeNULCharacter, "the path holds U+0000")
		return
	}
	vals, err := a.e.Read(r.Context(), tn, []EntityRef{ref}, time.Now())
	if err != nil {
		a.fail(w, err, false)
		return
	}
	problem.WriteJSON(w, http.StatusOK, vals[0])
}

type readRequest struct {
	Entities []EntityRef `json:"entities"`
}

func (a *API) readBatch(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	var in readRequest
	if !problem.ReadJSON(w, r, readBodyMax, &in) {
		return
	}
	switch {
	case len(in.Entities) == 0:
		problem.Send(w, problem.CodeInvalidRequest, "entities: 1 to 100 entities")
		return
	case len(in.Entities) > MaxReadEntities:
		problem.Send(w, problem.CodeBatchTooLarge, "entities: at most 100 entities")
		return
	}
	for i, e := range in.Entities {
		if e.Type == "" || e.ID == "" {
			problem.Write(w, problem.New(problem.CodeInvalidRequest, "an entity needs a type and an id").
				With("pointer", "/entities/"+itoa(i)), 0)
			return
		}
	}
	vals, err := a.e.Read(r.Context(), tn, in.Entities, time.Now())
	if err != nil {
		a.fail(w, err, false)
		return
	}
	problem.WriteJSON(w, http.StatusOK, map[string]any{"results": vals})
}

type evaluateRequest struct {
	Event  jsontext.Value `json:"event"`
	Record bool           `json:"record"`
}

func (a *API) evaluate(w http.ResponseWriter, r *http.Request) {
	tn, ok := tenant.RequireTenant(w, r)
	if !ok {
		return
	}
	var in evaluateRequest
	if !problem.ReadJSON(w, r, definitionBodyMax, &in) {
		return
	}
	if len(in.Event) == 0 {
		problem.Write(w, problem.New(problem.CodeInvalidRequest, "event is required").With("pointer", "/event"), 0)
		return
	}
	ev, err := spec.DecodeEvent(in.Event)
	if err != nil {
		sendDecode(w, err)
		return
	}
	out, err := a.e.Evaluate(r.Context(), tn, ev, in.Record, time.Now())
	if err != nil {
		a.fail(w, err, in.Record)
		return
	}
	problem.WriteJSON(w, http.StatusOK, out)
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
