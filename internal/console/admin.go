package console

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/problem"
)

// The console's settings routes are the control admin API's, under
// /console/api/admin/ instead of /v1/admin/: each becomes a request to
// the front door carrying the session's admin key, answered there (same
// validation, same problem codes, same audit). The console adds what a
// browser needs: the session instead of a bearer key, the CSRF check, a
// required reason, and the session's operator name in the audit trail.

// maxChangeBytes bounds a console change body: as the admin API's
// (a 64 KiB Text value with room for JSON escaping).
const maxChangeBytes = 4 * control.MaxTextBytes

func (c *Console) registerAdmin() {
	get := func(pattern string) {
		c.mux.HandleFunc("GET /console/api/admin/"+pattern, c.read(func(w http.ResponseWriter, r *http.Request, _ string, s session) {
			c.forward(w, r, s, nil)
		}))
	}
	get("settings/keys")
	get("settings/history")
	get("settings/tenants/{tenant}")
	get("presets")
	get("exports")
	c.mux.HandleFunc("PATCH /console/api/admin/settings/tenants/{tenant}", c.change(c.patchSettings))
	c.mux.HandleFunc("DELETE /console/api/admin/tenants/{tenant}/exports/{id}", c.change(c.cancelExport))
	c.mux.HandleFunc("POST /console/api/admin/presets/{preset}/{action}", c.change(c.preset))
}

// SettingsChange is the console's body for a settings change: values as
// text (the registry parses them), keys to unset, and the reason, which
// the console requires.
type SettingsChange struct {
	Set    map[string]string `json:"set"`
	Unset  []string          `json:"unset"`
	Reason string            `json:"reason"`
}

func (c *Console) patchSettings(w http.ResponseWriter, r *http.Request, _ string, s session) {
	var in SettingsChange
	if !problem.ReadJSON(w, r, maxChangeBytes, &in) || !c.reasonGiven(w, r, in.Reason) {
		return
	}
	out := control.PatchRequest{Set: make(map[string]json.RawMessage, len(in.Set)), Unset: in.Unset,
		Reason: in.Reason, Operator: s.operator}
	for k, v := range in.Set {
		raw, err := json.Marshal(v)
		if err != nil {
			problem.Send(w, problem.CodeInvalidRequest, "value of "+k+" cannot be encoded")
			return
		}
		out.Set[k] = raw
	}
	c.forwardJSON(w, r, s, out, in.Reason)
}

// PresetChange is the console's body for a preset apply or revert.
type PresetChange struct {
	Tenant string `json:"tenant"`
	Reason string `json:"reason"`
}

func (c *Console) preset(w http.ResponseWriter, r *http.Request, _ string, s session) {
	var in PresetChange
	if !problem.ReadJSON(w, r, maxChangeBytes, &in) || !c.reasonGiven(w, r, in.Reason) {
		return
	}
	c.forwardJSON(w, r, s, control.PresetRequest{Tenant: in.Tenant, Reason: in.Reason, Operator: s.operator}, in.Reason)
}

// cancelExport cancels any tenant's export through the exports admin route
// (the exports API answers 404 export_not_found for a wrong tenant, 409
// export_finished once finished). No reason is asked: it changes no
// setting, and the exports API logs the cancel with the tenant and id.
func (c *Console) cancelExport(w http.ResponseWriter, r *http.Request, _ string, s session) {
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	c.forward(sw, r, s, nil)
	c.cfg.Log.Info("console: export cancel", "tenant", r.PathValue("tenant"), "id", r.PathValue("id"), "status", sw.status,
		"operator", s.operator, "remote", r.RemoteAddr)
}

// reasonGiven answers reason_required for an empty or blank reason.
func (c *Console) reasonGiven(w http.ResponseWriter, r *http.Request, reason string) bool {
	if strings.TrimSpace(reason) == "" {
		c.refuse(w, r, problem.CodeReasonRequired, "say why: the reason is recorded in the audit trail")
		return false
	}
	return true
}

// forwardJSON forwards a change and logs its outcome: a refused change
// (an invalid value, an unknown tenant) is an attempt worth a warning.
func (c *Console) forwardJSON(w http.ResponseWriter, r *http.Request, s session, v any, reason string) {
	body, err := json.Marshal(v)
	if err != nil {
		problem.Send(w, problem.CodeInternal, "encode change")
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	c.forward(sw, r, s, body)
	c.forgetTenants()
	level := slog.LevelInfo
	if sw.status >= 400 {
		level = slog.LevelWarn
	}
	c.cfg.Log.Log(r.Context(), level, "console: change", "method", r.Method, "path", r.URL.Path, "status", sw.status,
		"operator", s.operator, "reason", reason, "remote", r.RemoteAddr)
}

// statusWriter records the status the admin API answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// forward sends r to the front door's /v1/admin/ route of the same
// method and path, with the session's admin key and body (nil: none), and
// lets it answer w directly.
func (c *Console) forward(w http.ResponseWriter, r *http.Request, s session, body []byte) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/console/api/admin/")
	u, err := url.Parse("/v1/admin/" + rest)
	if err != nil {
		problem.Send(w, problem.CodeInvalidRequest, "bad path")
		return
	}
	u.RawQuery = r.URL.RawQuery
	req := r.Clone(r.Context())
	req.URL, req.RequestURI, req.Pattern = u, u.RequestURI(), ""
	req.Header = http.Header{"Authorization": {"Bearer " + s.key}, "Accept": {"application/json"}}
	req.Body, req.ContentLength = http.NoBody, 0
	if body != nil {
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		req.Header.Set("Content-Type", "application/json")
	}
	c.cfg.API.ServeHTTP(w, req)
}
