package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

// API serves the admin endpoints of the control plane. Every route needs
// the admin key (tenant.RequireAdmin); the authenticated key id is the
// audit trail's actor.
type API struct {
	store *Store
	reg   *Registry
	log   *slog.Logger
}

// NewAPI returns the HTTP API over store.
func NewAPI(store *Store, log *slog.Logger) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{store: store, reg: store.reg, log: log}
}

// Register mounts the routes on mux:
//
//	GET   /v1/admin/settings/keys               registry: keys, types, defaults, bounds, docs
//	GET   /v1/admin/settings/history            audit trail (?tenant=&key=&limit=&before=)
//	GET   /v1/admin/settings/tenants/{tenant}   effective settings ("*" = global scope)
//	PATCH /v1/admin/settings/tenants/{tenant}   {"set":{k:v},"unset":[k],"reason":"","operator":""}
//	GET   /v1/admin/presets                     presets and their values
//	POST  /v1/admin/presets/{preset}/apply      {"tenant":"acme","reason":"","operator":""}
//	POST  /v1/admin/presets/{preset}/revert     same body
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/admin/settings/keys", a.admin(a.handleKeys))
	mux.HandleFunc("GET /v1/admin/settings/history", a.admin(a.handleHistory))
	mux.HandleFunc("GET /v1/admin/settings/tenants/{tenant}", a.admin(a.handleGet))
	mux.HandleFunc("PATCH /v1/admin/settings/tenants/{tenant}", a.admin(a.handlePatch))
	mux.HandleFunc("GET /v1/admin/presets", a.admin(a.handlePresets))
	mux.HandleFunc("POST /v1/admin/presets/{preset}/{action}", a.admin(a.handlePreset))
}

func (a *API) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if tenant.RequireAdmin(w, r) {
			h(w, r)
		}
	}
}

// KeyDoc is a key as the API lists it.
type KeyDoc struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Default   string   `json:"default"`
	Min       *float64 `json:"min,omitempty"`
	Max       *float64 `json:"max,omitempty"`
	Doc       string   `json:"doc"`
	Validated bool     `json:"validated"` // a validator beyond type and range is installed
}

func (a *API) handleKeys(w http.ResponseWriter, r *http.Request) {
	keys := a.reg.Keys()
	out := make([]KeyDoc, len(keys))
	for i, k := range keys {
		out[i] = KeyDoc{Name: k.Name, Type: k.Type.String(), Default: k.Default, Doc: k.Doc, Validated: k.Validate != nil}
		if k.Min != 0 || k.Max != 0 {
			out[i].Min, out[i].Max = &keys[i].Min, &keys[i].Max
		}
	}
	problem.WriteJSON(w, http.StatusOK, map[string]any{"keys": out})
}

func (a *API) handlePresets(w http.ResponseWriter, r *http.Request) {
	problem.WriteJSON(w, http.StatusOK, map[string]any{"presets": a.reg.Presets()})
}

func (a *API) handleGet(w http.ResponseWriter, r *http.Request) {
	s, err := a.store.Settings(r.Context(), r.PathValue("tenant"))
	if err != nil {
		a.sendErr(w, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, s)
}

func (a *API) handleHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := HistoryFilter{Tenant: q.Get("tenant"), Key: q.Get("key")}
	for _, v := range []string{f.Tenant, f.Key} {
		if problem.HasNUL(v) || !utf8.ValidString(v) {
			problem.Send(w, problem.CodeInvalidRequest, "tenant and key must be UTF-8 text without U+0000")
			return
		}
	}
	var err error
	if s := q.Get("limit"); s != "" {
		if f.Limit, err = strconv.Atoi(s); err != nil || f.Limit <= 0 {
			problem.Send(w, problem.CodeInvalidRequest, fmt.Sprintf("limit must be 1 to %d", MaxHistory))
			return
		}
	}
	if s := q.Get("before"); s != "" {
		if f.BeforeID, err = strconv.ParseInt(s, 10, 64); err != nil {
			problem.Send(w, problem.CodeInvalidRequest, "before must be an audit entry id")
			return
		}
	}
	entries, err := a.store.History(r.Context(), f)
	if err != nil {
		a.sendErr(w, err)
		return
	}
	if entries == nil {
		entries = []AuditEntry{}
	}
	problem.WriteJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

// PatchRequest is the body of PATCH /v1/admin/settings/tenants/{tenant}.
// Values may be JSON strings, numbers or booleans; an object or array is
// taken as the text of a Text key (a JSON rule table).
type PatchRequest struct {
	Set      map[string]json.RawMessage `json:"set"`
	Unset    []string                   `json:"unset"`
	Reason   string                     `json:"reason"`
	Operator string                     `json:"operator"`
}

func (a *API) handlePatch(w http.ResponseWriter, r *http.Request) {
	var in PatchRequest
	if !problem.ReadJSON(w, r, decodeLimit, &in) {
		return
	}
	changes := make([]Change, 0, len(in.Set)+len(in.Unset))
	for _, k := range slices.Sorted(maps.Keys(in.Set)) {
		v, err := rawValue(in.Set[k])
		if err != nil {
			a.sendErr(w, fmt.Errorf("%s: %w", k, err))
			return
		}
		changes = append(changes, Change{Key: k, Value: v})
	}
	for _, k := range in.Unset {
		changes = append(changes, Change{Key: k, Unset: true})
	}
	res, err := a.store.Apply(r.Context(), r.PathValue("tenant"), changes, a.actor(r, in.Reason, in.Operator))
	if err != nil {
		a.sendErr(w, err)
		return
	}
	writeResult(w, res)
}

// rawValue turns a JSON value into setting text.
func rawValue(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", fmt.Errorf("%w: missing value", ErrInvalidValue)
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: %w", ErrInvalidValue, err)
		}
		return s, nil
	case 'n':
		return "", fmt.Errorf("%w: null is not a value; list the key under \"unset\"", ErrInvalidValue)
	}
	return string(raw), nil
}

// PresetRequest is the body of the preset apply and revert routes.
type PresetRequest struct {
	Tenant   string `json:"tenant"`
	Reason   string `json:"reason"`
	Operator string `json:"operator"`
}

func (a *API) handlePreset(w http.ResponseWriter, r *http.Request) {
	var in PresetRequest
	if !problem.ReadJSON(w, r, decodeLimit, &in) {
		return
	}
	who := a.actor(r, in.Reason, in.Operator)
	var (
		res Result
		err error
	)
	switch r.PathValue("action") {
	case "apply":
		res, err = a.store.ApplyPreset(r.Context(), in.Tenant, r.PathValue("preset"), who)
	case "revert":
		res, err = a.store.RevertPreset(r.Context(), in.Tenant, r.PathValue("preset"), who)
	default:
		problem.Send(w, problem.CodeNotFound, "preset actions are apply and revert")
		return
	}
	if err != nil {
		a.sendErr(w, err)
		return
	}
	writeResult(w, res)
}

func (a *API) actor(r *http.Request, reason, operator string) Actor {
	p, _ := tenant.FromContext(r.Context())
	return Actor{KeyID: p.KeyID, Operator: operator, Reason: reason}
}

func writeResult(w http.ResponseWriter, res Result) {
	if res.Changes == nil {
		res.Changes = []AuditEntry{}
	}
	problem.WriteJSON(w, http.StatusOK, res)
}

// sendErr maps store errors to stable problem codes.
func (a *API) sendErr(w http.ResponseWriter, err error) {
	for _, m := range []struct {
		err  error
		code string
	}{
		{ErrUnknownKey, problem.CodeUnknownSetting},
		{ErrOutOfRange, problem.CodeSettingOutOfRange},
		{ErrInvalidValue, problem.CodeInvalidSettingValue},
		{ErrUnknownTenant, problem.CodeTenantNotFound},
		{ErrUnknownPreset, problem.CodePresetNotFound},
		{ErrPresetApplied, problem.CodePresetAlreadyApplied},
		{ErrPresetNotApplied, problem.CodePresetNotApplied},
		{ErrTooManyOverrides, problem.CodeTooManyOverrides},
		{ErrBadRequest, problem.CodeInvalidRequest},
	} {
		if errors.Is(err, m.err) {
			problem.Send(w, m.code, err.Error())
			return
		}
	}
	a.log.Error("control: store error", "err", err)
	problem.Send(w, problem.CodeControlStoreUnavailable, "the settings store is unreachable; nothing was changed")
}

// decodeLimit bounds request bodies: a full Text value (64 KiB) plus room
// for JSON escaping of it.
const decodeLimit = 4 * MaxTextBytes
