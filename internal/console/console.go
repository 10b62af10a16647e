package console

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

//go:embed assets
var assets embed.FS

// Config assembles a console. Required fields are marked; New rejects a
// config without them.
type Config struct {
	// Authenticate maps a presented key to its principal (required):
	// tenant.Store.Authenticate. Only the admin principal may sign in.
	Authenticate func(ctx context.Context, key string) (tenant.Principal, error)
	// API is the front door (required): every settings read and change
	// the console makes is a request to its /v1/admin/ routes, carrying the
	// session's admin key, so it is authenticated, admitted, validated,
	// persisted and audited exactly as the CLI's.
	API http.Handler
	// Gatherer is the process's registry, the one /metrics serves
	// (required).
	Gatherer prometheus.Gatherer
	// Snapshot returns the settings this process applies (required):
	// control.Watcher.Current.
	Snapshot func() *control.Snapshot
	// Registry lists the setting keys (required): the task table has one
	// column per tasks.<task>.rate_per_partition key.
	Registry *control.Registry
	// Tenants lists up to limit tenant ids (optional: without it the task
	// table lists only tenants that lag metrics name).
	Tenants func(ctx context.Context, limit int) ([]string, error)
	// RouteClass maps a route pattern to its class (optional; nil: the
	// pattern itself): edge.RouteClass.
	RouteClass func(pattern string) string
	// Log records sign-ins and refused attempts (default: discard).
	Log *slog.Logger
	// SessionIdle ends a session unused for this long (default 30 min).
	SessionIdle time.Duration
	// SessionMax ends a session this long after sign-in, used or not
	// (default 12 h).
	SessionMax time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Console serves /console: the page, its assets and its JSON routes.
type Console struct {
	cfg      Config
	mux      *http.ServeMux
	sessions *sessions
	sampler  *sampler

	tmu       sync.Mutex // guards tenants, tenantsAt; held while the list is read
	tenants   []string
	tenantsAt time.Time
}

// New returns the console of cfg.
func New(cfg Config) (*Console, error) {
	if cfg.Authenticate == nil || cfg.API == nil || cfg.Gatherer == nil || cfg.Snapshot == nil || cfg.Registry == nil {
		return nil, errors.New("console: Authenticate, API, Gatherer, Snapshot and Registry are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 30 * time.Minute
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux(), sessions: newSessions(cfg.SessionIdle, cfg.SessionMax, cfg.Now),
		sampler: &sampler{g: cfg.Gatherer, now: cfg.Now}}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	c.mux.HandleFunc("GET /console/{$}", c.page)
	c.mux.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", http.FileServerFS(static)))
	c.mux.HandleFunc("POST /console/api/signin", c.signIn)
	c.mux.HandleFunc("POST /console/api/signout", c.change(c.signOut))
	c.mux.HandleFunc("GET /console/api/session", c.read(c.sessionInfo))
	c.mux.HandleFunc("GET /console/api/summary", c.read(c.handleSummary))
	c.registerAdmin()
	c.mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		problem.Send(w, problem.CodeNotFound, "no console route "+r.Method+" "+r.URL.Path)
	})
	return c, nil
}

// ServeHTTP serves every path under /console/ (mount it there, outside
// the API key middleware: the console authenticates by its session).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Everything is served from this origin, no inline script or style:
	// an injected string cannot run.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	c.mux.ServeHTTP(w, r)
}

func (c *Console) page(w http.ResponseWriter, r *http.Request) {
	b, err := assets.ReadFile("assets/index.html")
	if err != nil {
		problem.Send(w, problem.CodeInternal, "console page missing")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// maxSignInBytes bounds the sign-in form: a key and an operator name.
const maxSignInBytes = 4 << 10

// signIn opens a session for the admin key posted as form field "key"
// (and an optional "operator" name for the audit trail).
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		c.refuse(w, r, problem.CodeCSRFTokenInvalid, "sign-in from another origin")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInBytes)
	if err := r.ParseForm(); err != nil {
		problem.Send(w, problem.CodeInvalidRequest, "the sign-in form could not be read: "+err.Error())
		return
	}
	key, operator := r.PostForm.Get("key"), strings.TrimSpace(r.PostForm.Get("operator"))
	if !utf8.ValidString(operator) || len(operator) > control.MaxReasonBytes || strings.ContainsRune(operator, 0) {
		problem.Send(w, problem.CodeInvalidRequest, "operator must be UTF-8 text of at most 1024 bytes")
		return
	}
	p, err := c.cfg.Authenticate(r.Context(), key)
	switch {
	case errors.Is(err, tenant.ErrUnauthenticated):
		c.refuse(w, r, problem.CodeUnauthenticated, "that is not the admin key")
		return
	case err != nil:
		problem.Send(w, problem.CodeAuthUnavailable, "the key store is unreachable")
		return
	case !p.Admin:
		c.refuse(w, r, problem.CodeAdminKeyRequired, "a tenant API key cannot open the console; sign in with the admin key")
		return
	}
	if operator == "" {
		operator = "console"
	}
	id, sess := c.sessions.open(key, operator)
	setCookie(w, r, id, int(c.cfg.SessionMax/time.Second))
	c.cfg.Log.Info("console: signed in", "operator", operator, "remote", r.RemoteAddr)
	problem.WriteJSON(w, http.StatusOK, sessionJSON(sess))
}

func sessionJSON(s session) map[string]any {
	return map[string]any{"csrf_token": s.csrf, "operator": s.operator, "expires": s.expires}
}

func (c *Console) sessionInfo(w http.ResponseWriter, r *http.Request, _ string, s session) {
	problem.WriteJSON(w, http.StatusOK, sessionJSON(s))
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request, id string, s session) {
	c.sessions.close(id)
	setCookie(w, r, "", -1)
	c.cfg.Log.Info("console: signed out", "operator", s.operator, "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}

func (c *Console) handleSummary(w http.ResponseWriter, r *http.Request, _ string, _ session) {
	s, err := c.summary(r.Context())
	if err != nil {
		problem.Send(w, problem.CodeInternal, "gather metrics: "+err.Error())
		return
	}
	problem.WriteJSON(w, http.StatusOK, s)
}

// handler is a console route with its session.
type handler func(w http.ResponseWriter, r *http.Request, id string, s session)

// read requires a live session.
func (c *Console) read(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, s, ok := c.sessions.fromRequest(r)
		if !ok {
			c.refuse(w, r, problem.CodeConsoleSessionRequired, "sign in to the console with the admin key (no session, or it expired)")
			return
		}
		h(w, r, id, s)
	}
}

// change requires a live session, a same-origin request and the session's
// CSRF token: SameSite=Strict already keeps other sites' requests from
// carrying the cookie; the token also covers older browsers and a
// subdomain that could set cookies.
func (c *Console) change(h handler) http.HandlerFunc {
	return c.read(func(w http.ResponseWriter, r *http.Request, id string, s session) {
		if !sameOrigin(r) || !csrfOK(r, s) {
			c.refuse(w, r, problem.CodeCSRFTokenInvalid, "missing or wrong "+CSRFHeader+"; reload the console")
			return
		}
		h(w, r, id, s)
	})
}

// refuse answers code and logs the attempt (never the key).
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, code, detail string) {
	c.cfg.Log.Warn("console: refused", "code", code, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	problem.Send(w, code, detail)
}

// sameOrigin is false when the browser says the request comes from another
// origin (Origin header, or Sec-Fetch-Site); requests without either (not
// from a browser) pass, as they carry no ambient cookie of a victim.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}
