package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/console"
	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const adminKey = "bwa_console_test_admin"

// clock is a settable clock for session expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fixture is a console over a real database: the tenant store
// authenticates, the control admin API (behind the API key middleware, as
// in the front door) stores and audits.
type fixture struct {
	log     *logBuffer
	srv     *httptest.Server
	tenants *tenant.Store
	store   *control.Store
	clock   *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool := pgtest.Pool(t)
	tenants := tenant.NewStore(pool, adminKey)
	creg := control.NewRegistry()
	watcher := control.NewWatcher(pool, creg, nil, nil)
	store := control.NewStore(pool, creg)
	mux := http.NewServeMux()
	control.NewAPI(store, nil).Register(mux)
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	logs := &logBuffer{}
	con, err := console.New(console.Config{Log: slog.New(slog.NewTextHandler(logs, nil)),
		Authenticate: tenants.Authenticate, API: tenants.Middleware(mux), Gatherer: prometheus.NewRegistry(),
		Snapshot: watcher.Current, Registry: creg, Tenants: tenants.List, Now: clk.Now,
		SessionIdle: 10 * time.Minute, SessionMax: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	if err := tenants.CreateTenant(context.Background(), "acme", ""); err != nil {
		t.Fatal(err)
	}
	return &fixture{log: logs, srv: srv, tenants: tenants, store: store, clock: clk}
}

// logBuffer collects the console's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// browser is an HTTP client with a cookie jar and the CSRF token of its
// session.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func (f *fixture) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: f.srv.URL, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (b *browser) do(method, path, body string, hdr ...string) answer {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if method == http.MethodPost && strings.HasSuffix(path, "/signin") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// withCSRF is do with the session's token.
func (b *browser) withCSRF(method, path, body string) answer {
	b.t.Helper()
	return b.do(method, path, body, console.CSRFHeader, b.csrf)
}

func (b *browser) signIn(key string) answer {
	b.t.Helper()
	a := b.do("POST", "/console/api/signin", "key="+key+"&operator=ops-alice")
	if tok, ok := a.body["csrf_token"].(string); ok {
		b.csrf = tok
	}
	return a
}

// isProblem fails unless a is a problem+json answer with code.
func isProblem(t *testing.T, what string, a answer, code string) {
	t.Helper()
	if a.status != problem.Status(code) || a.body["code"] != code || a.header.Get("Content-Type") != problem.ContentType {
		t.Fatalf("%s: got %d %v (%s), want %d %s problem+json", what, a.status, a.body, a.header.Get("Content-Type"), problem.Status(code), code)
	}
}

func (f *fixture) historyLen(t *testing.T) int {
	t.Helper()
	entries, err := f.store.History(context.Background(), control.HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestTenantKeyCannotSignIn: a tenant key and a wrong key are refused with
// problem+json and no cookie; without a session every console route
// answers console_session_required.
func TestTenantKeyCannotSignIn(t *testing.T) {
	f := newFixture(t)
	_, secret, err := f.tenants.CreateKey(context.Background(), "acme", tenant.KeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := f.browser(t)
	a := b.signIn(secret)
	isProblem(t, "tenant key", a, problem.CodeAdminKeyRequired)
	if len(a.header.Values("Set-Cookie")) != 0 {
		t.Fatalf("tenant key sign-in set a cookie: %v", a.header.Values("Set-Cookie"))
	}
	isProblem(t, "wrong key", b.signIn("bwa_wrong"), problem.CodeUnauthenticated)
	isProblem(t, "no key", b.signIn(""), problem.CodeUnauthenticated)
	for _, p := range []string{"/console/api/summary", "/console/api/session", "/console/api/admin/settings/tenants/acme"} {
		isProblem(t, "GET "+p+" without session", b.do("GET", p, ""), problem.CodeConsoleSessionRequired)
	}
	// A tenant key as a bearer header opens nothing either: the console
	// knows only its session.
	isProblem(t, "bearer tenant key", b.do("GET", "/console/api/summary", "", "Authorization", "Bearer "+secret), problem.CodeConsoleSessionRequired)
}

// TestSessionCookie: the admin key opens a session whose cookie is
// HTTP-only, SameSite=Strict, scoped to /console and does not hold the
// key; the page and the summary are then served.
func TestSessionCookie(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	a := b.signIn(adminKey)
	if a.status != 200 || b.csrf == "" || a.body["operator"] != "ops-alice" {
		t.Fatalf("sign-in: %d %v", a.status, a.body)
	}
	cookie := a.header.Get("Set-Cookie")
	for _, want := range []string{console.CookieName + "=", "Path=/console", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %q", cookie, want)
		}
	}
	if strings.Contains(cookie, adminKey) || strings.Contains(cookie, "Secure") {
		t.Errorf("cookie %q holds the key or is Secure over plain HTTP", cookie)
	}
	if a := b.do("GET", "/console/api/summary", ""); a.status != 200 || a.body["tasks"] == nil ||
		fmt.Sprint(a.body["tenants"]) != "[acme]" {
		t.Fatalf("summary: %d %v", a.status, a.body)
	}
	if a := b.do("GET", "/console/", ""); a.status != 200 || !strings.Contains(a.header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("page: %d csp %q", a.status, a.header.Get("Content-Security-Policy"))
	}
}

// TestChangeWithoutCSRFIsRefused: with a live session, a change without
// the token, with a wrong one or from another origin is refused and
// changes nothing; with it, the change is stored and audited with the
// session's operator.
func TestChangeWithoutCSRFIsRefused(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn(adminKey)
	path := "/console/api/admin/settings/tenants/acme"
	body := `{"set":{"tasks.recompute.rate_per_partition":"0"},"reason":"drill"}`
	isProblem(t, "no token", b.do("PATCH", path, body), problem.CodeCSRFTokenInvalid)
	isProblem(t, "wrong token", b.do("PATCH", path, body, console.CSRFHeader, "x"+b.csrf), problem.CodeCSRFTokenInvalid)
	isProblem(t, "other origin", b.do("PATCH", path, body, console.CSRFHeader, b.csrf, "Origin", "https://evil.example"), problem.CodeCSRFTokenInvalid)
	isProblem(t, "cross-site fetch", b.do("PATCH", path, body, console.CSRFHeader, b.csrf, "Sec-Fetch-Site", "cross-site"), problem.CodeCSRFTokenInvalid)
	isProblem(t, "preset without token", b.do("POST", "/console/api/admin/presets/surge/apply", `{"tenant":"acme","reason":"r"}`), problem.CodeCSRFTokenInvalid)
	isProblem(t, "sign-out without token", b.do("POST", "/console/api/signout", ""), problem.CodeCSRFTokenInvalid)
	isProblem(t, "export cancel without token", b.do("DELETE", "/console/api/admin/tenants/acme/exports/0193", ""), problem.CodeCSRFTokenInvalid)
	if n := f.historyLen(t); n != 0 {
		t.Fatalf("refused changes wrote %d audit entries", n)
	}
	a := b.withCSRF("PATCH", path, body)
	if a.status != 200 {
		t.Fatalf("change with token: %d %v", a.status, a.body)
	}
	entries, err := f.store.History(context.Background(), control.HistoryFilter{Tenant: "acme"})
	if err != nil || len(entries) != 1 || entries[0].Reason != "drill" || entries[0].Operator != "ops-alice" || entries[0].Actor != "admin" {
		t.Fatalf("audit after the change: %+v %v", entries, err)
	}
}

// TestChangeWithoutReasonIsRefused: settings and preset changes need a
// reason; a blank one is refused before anything is stored. An invalid
// value is refused by the admin API with its own code.
func TestChangeWithoutReasonIsRefused(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn(adminKey)
	path := "/console/api/admin/settings/tenants/acme"
	isProblem(t, "set without reason", b.withCSRF("PATCH", path, `{"set":{"quota.burst":"5"}}`), problem.CodeReasonRequired)
	isProblem(t, "unset with blank reason", b.withCSRF("PATCH", path, `{"unset":["quota.burst"],"reason":"  "}`), problem.CodeReasonRequired)
	isProblem(t, "preset without reason", b.withCSRF("POST", "/console/api/admin/presets/surge/apply", `{"tenant":"acme"}`), problem.CodeReasonRequired)
	isProblem(t, "unknown member", b.withCSRF("PATCH", path, `{"set":{},"reason":"r","operator":"mallory"}`), problem.CodeUnknownMember)
	isProblem(t, "invalid value", b.withCSRF("PATCH", path, `{"set":{"quota.burst":"many"},"reason":"r"}`), problem.CodeInvalidSettingValue)
	if n := f.historyLen(t); n != 0 {
		t.Fatalf("refused changes wrote %d audit entries", n)
	}
	logs := f.log.String()
	for _, want := range []string{"code=reason_required", "level=WARN msg=\"console: change\" method=PATCH path=/console/api/admin/settings/tenants/acme status=422"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, adminKey) {
		t.Error("the log holds the admin key")
	}
	a := b.withCSRF("POST", "/console/api/admin/presets/surge/apply", `{"tenant":"acme","reason":"surge"}`)
	if a.status != 200 {
		t.Fatalf("preset with reason: %d %v", a.status, a.body)
	}
	a = b.withCSRF("POST", "/console/api/admin/presets/surge/revert", `{"tenant":"acme","reason":"over"}`)
	if a.status != 200 {
		t.Fatalf("revert with reason: %d %v", a.status, a.body)
	}
}

// TestSignOutInvalidatesSession: after sign-out the old cookie (replayed
// by hand, as a stolen copy would be) opens nothing.
func TestSignOutInvalidatesSession(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	a := b.signIn(adminKey)
	var cookie string
	for _, c := range a.header.Values("Set-Cookie") {
		cookie, _, _ = strings.Cut(c, ";")
	}
	if a := b.withCSRF("POST", "/console/api/signout", ""); a.status != http.StatusNoContent {
		t.Fatalf("sign-out: %d %v", a.status, a.body)
	}
	replay := f.browser(t)
	isProblem(t, "old cookie after sign-out", replay.do("GET", "/console/api/summary", "", "Cookie", cookie), problem.CodeConsoleSessionRequired)
	isProblem(t, "old cookie and token after sign-out", replay.do("PATCH", "/console/api/admin/settings/tenants/acme",
		`{"set":{"quota.burst":"5"},"reason":"r"}`, "Cookie", cookie, console.CSRFHeader, b.csrf), problem.CodeConsoleSessionRequired)
}

// TestSessionExpires: a session unused for the idle timeout ends; one in
// use ends at the absolute limit.
func TestSessionExpires(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn(adminKey)
	f.clock.add(9 * time.Minute)
	if a := b.do("GET", "/console/api/session", ""); a.status != 200 {
		t.Fatalf("session within the idle timeout: %d", a.status)
	}
	f.clock.add(11 * time.Minute)
	isProblem(t, "idle session", b.do("GET", "/console/api/session", ""), problem.CodeConsoleSessionRequired)

	b.signIn(adminKey)
	for range 7 { // used every 9 minutes: 63 minutes > the 1 h limit
		f.clock.add(9 * time.Minute)
		b.do("GET", "/console/api/session", "")
	}
	isProblem(t, "session past its absolute limit", b.do("GET", "/console/api/session", ""), problem.CodeConsoleSessionRequired)
}
