package export

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/export/exporttest"
	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

// apiEnv serves the export routes with the tenant taken from the
// X-Test-Tenant header, or the admin principal for adminPrincipal (the
// edge's authentication is tested elsewhere).
const adminPrincipal = "@admin"

type apiEnv struct {
	*env
	api *API
	srv *httptest.Server
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	e := newEnv(t)
	api, err := NewAPI(context.Background(), e.pool, e.store, e.dir, e.watcher, e.log)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := tenant.Principal{TenantID: r.Header.Get("X-Test-Tenant")}
		if p.TenantID == adminPrincipal {
			p = tenant.Principal{Admin: true}
		}
		mux.ServeHTTP(w, r.WithContext(tenant.WithPrincipal(r.Context(), p)))
	}))
	t.Cleanup(srv.Close)
	return &apiEnv{env: e, api: api, srv: srv}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a *apiEnv) do(tn, method, path, body string, hdr ...string) answer {
	a.t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("X-Test-Tenant", tn)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

// expectProblem checks a problem answer's status and code.
func (a *apiEnv) expectProblem(ans answer, code string) {
	a.t.Helper()
	var p struct{ Code string }
	if err := json.Unmarshal(ans.body, &p); err != nil || p.Code != code || ans.status != problem.Status(code) {
		a.t.Fatalf("got %d %s, want %d %s", ans.status, ans.body, problem.Status(code), code)
	}
	if ct := ans.header.Get("Content-Type"); ct != problem.ContentType {
		a.t.Fatalf("Content-Type %q", ct)
	}
}

func (a *apiEnv) jobCount() int {
	a.t.Helper()
	var n int
	if err := a.pool.QueryRow(context.Background(), `SELECT count(*) FROM export_jobs`).Scan(&n); err != nil {
		a.t.Fatal(err)
	}
	return n
}

func decodeStatus(t *testing.T, ans answer) Status {
	t.Helper()
	var s Status
	if err := json.Unmarshal(ans.body, &s); err != nil {
		t.Fatalf("%d %s: %v", ans.status, ans.body, err)
	}
	return s
}

// TestBadInput: every bad request gets its problem and changes nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	a := newAPIEnv(t)
	ctx := context.Background()
	for _, tn := range []string{"acme", "other"} {
		if err := exporttest.Seed(ctx, a.pool, tn, 3, 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.pool.Exec(ctx, `INSERT INTO accounts (tenant_id, id, asset, scale, rule) VALUES ('other', 'only-other', 'USD', 2, 'none')`); err != nil {
		t.Fatal(err)
	}
	rng := `"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"`
	cases := []struct{ body, code string }{
		{`{"kind":"ledgers"}`, problem.CodeInvalidRequest},
		{`{}`, problem.CodeInvalidRequest},
		{`{"kind":"accounts","format":"xml"}`, problem.CodeInvalidRequest},
		{`{"kind":"accounts","compression":"zstd"}`, problem.CodeInvalidRequest},
		{`{"kind":"accounts","colour":"red"}`, problem.CodeUnknownMember},
		{`{"kind":"accounts","Kind":"accounts"}`, problem.CodeUnknownMember},
		{`{"kind":"accounts","kind":"accounts"}`, problem.CodeDuplicateMember},
		{`{"kind":"entries"}`, problem.CodeInvalidRequest},
		{`{"kind":"entries","from":"2026-01-01T00:00:00Z"}`, problem.CodeInvalidRequest},
		{`{"kind":"transactions","from":"2026-02-01T00:00:00Z","to":"2026-01-01T00:00:00Z"}`, problem.CodeInvalidRequest},
		{`{"kind":"transactions","from":"2026-01-01T00:00:00Z","to":"2026-01-01T00:00:00Z"}`, problem.CodeInvalidRequest},
		{`{"kind":"transactions","from":"yesterday","to":"2026-01-01T00:00:00Z"}`, problem.CodeMalformedJSON},
		{`{"kind":"accounts",` + rng + `}`, problem.CodeInvalidRequest},
		{`{"kind":"transactions","account_id":"acct-000001",` + rng + `}`, problem.CodeInvalidRequest},
		{`{"kind":"entries","account_id":"bad id",` + rng + `}`, problem.CodeInvalidAccount},
		{`{"kind":"entries","account_id":"only-other",` + rng + `}`, problem.CodeAccountNotFound},
		{`{"kind":"entries","account_id":"nope",` + rng + `}`, problem.CodeAccountNotFound},
		{`{"kind":"accounts"} {}`, problem.CodeMalformedJSON},
		{`{"kind":"accounts","format":"csv\u0000"}`, problem.CodeNULCharacter},
	}
	for _, c := range cases {
		a.expectProblem(a.do("acme", "POST", "/v1/exports", c.body), c.code)
	}
	if n := a.jobCount(); n != 0 {
		t.Fatalf("bad requests created %d jobs", n)
	}

	// Another tenant's export: 404 on every route, no hint.
	ans := a.do("other", "POST", "/v1/exports", `{"kind":"accounts"}`)
	if ans.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", ans.status, ans.body)
	}
	theirs := decodeStatus(t, ans)
	for _, m := range []string{"GET", "DELETE"} {
		a.expectProblem(a.do("acme", m, "/v1/exports/"+theirs.ID, ""), problem.CodeExportNotFound)
	}
	a.expectProblem(a.do("acme", "GET", "/v1/exports/not-a-uuid", ""), problem.CodeExportNotFound)
	a.expectProblem(a.do("acme", "GET", "/v1/exports/"+theirs.ID+"/download?expires=1&sig=x", ""), problem.CodeExportNotFound)

	// Too many in flight: 429 with Retry-After, nothing queued.
	a.set("acme", control.KeyExportMaxInFlight, "1")
	if ans := a.do("acme", "POST", "/v1/exports", `{"kind":"accounts"}`); ans.status != http.StatusAccepted {
		t.Fatalf("first export: %d %s", ans.status, ans.body)
	}
	before := a.jobCount()
	ans = a.do("acme", "POST", "/v1/exports", `{"kind":"accounts","format":"jsonl"}`)
	a.expectProblem(ans, problem.CodeTooManyExports)
	if ans.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if a.jobCount() != before {
		t.Fatal("a refused export was stored")
	}
	// The identical request is the same export, not a second one.
	again := a.do("acme", "POST", "/v1/exports", `{"kind":"accounts"}`)
	if again.status != http.StatusOK || a.jobCount() != before {
		t.Fatalf("identical request: %d %s (jobs %d → %d)", again.status, again.body, before, a.jobCount())
	}
}

// TestDownload: status with manifest, download with Content-Length,
// ETag and Range, link checks, cancel of a finished export.
func TestDownload(t *testing.T) {
	t.Parallel()
	a := newAPIEnv(t)
	if err := exporttest.Seed(context.Background(), a.pool, "acme", 5, 300); err != nil {
		t.Fatal(err)
	}
	a.runner(Config{}, nil)
	st := decodeStatus(t, a.do("acme", "POST", "/v1/exports",
		`{"kind":"transactions","from":"2026-01-01T00:00:00Z","to":"2027-01-01T00:00:00Z","compression":"gzip"}`))
	a.expectProblem(a.do("acme", "GET", "/v1/exports/"+st.ID+"/download?expires=1&sig=x", ""), problem.CodeDownloadLinkInvalid)
	j := a.wait("acme", st.ID, 30*time.Second)
	if j.State != StateSucceeded {
		t.Fatalf("export %s: %s", j.State, j.Error)
	}
	st = decodeStatus(t, a.do("acme", "GET", "/v1/exports/"+st.ID, ""))
	m := st.Manifest
	if m == nil || m.Rows != 300 || m.SHA256 != j.SHA256 || len(m.Columns) != 9 || st.ProgressPercent != 100 {
		t.Fatalf("status: %+v manifest %+v", st, m)
	}
	a.content(j) // checks the file's SHA-256 and size against the job
	full := a.do("acme", "GET", m.DownloadURL, "")
	if full.status != http.StatusOK || int64(len(full.body)) != m.Bytes ||
		full.header.Get("Content-Length") == "" || full.header.Get("ETag") != `"`+m.SHA256+`"` {
		t.Fatalf("download: %d, %d bytes, headers %v", full.status, len(full.body), full.header)
	}
	part := a.do("acme", "GET", m.DownloadURL, "", "Range", "bytes=100-")
	if part.status != http.StatusPartialContent || string(part.body) != string(full.body[100:]) {
		t.Fatalf("range: %d, %d bytes", part.status, len(part.body))
	}
	// Another tenant presenting the link: 404 (the export is not theirs).
	a.expectProblem(a.do("other", "GET", m.DownloadURL, ""), problem.CodeExportNotFound)
	// Tampered: a changed expiry, a changed signature, extra parameters.
	u, _ := url.Parse(m.DownloadURL)
	q := u.Query()
	for _, mutate := range []func(url.Values){
		func(v url.Values) { v.Set("expires", v.Get("expires")+"0") },
		func(v url.Values) { s := []byte(v.Get("sig")); s[0] ^= 1; v.Set("sig", string(s)) },
		func(v url.Values) { v.Set("x", "1") },
		func(v url.Values) { v.Del("sig") },
	} {
		v := url.Values{}
		for k, vs := range q {
			v[k] = append([]string(nil), vs...)
		}
		mutate(v)
		a.expectProblem(a.do("acme", "GET", u.Path+"?"+v.Encode(), ""), problem.CodeDownloadLinkInvalid)
	}
	// Expired: a link signed in the past.
	old := a.api.signer.Link("acme", st.ID, time.Now().Add(-time.Minute))
	a.expectProblem(a.do("acme", "GET", u.Path+"?"+old, ""), problem.CodeDownloadLinkExpired)
	// Signed for another tenant: invalid for this one.
	foreign := a.api.signer.Link("other", st.ID, time.Now().Add(time.Minute))
	a.expectProblem(a.do("acme", "GET", u.Path+"?"+foreign, ""), problem.CodeDownloadLinkInvalid)
	// Cancel of a finished export: 409, nothing changes.
	a.expectProblem(a.do("acme", "DELETE", "/v1/exports/"+st.ID, ""), problem.CodeExportFinished)
	if again := a.wait("acme", st.ID, time.Second); again.State != StateSucceeded {
		t.Fatalf("state after refused cancel: %s", again.State)
	}
	// Retention: the sweeper expires it and removes the file.
	a.set(control.GlobalTenant, control.KeyExportRetentionHours, "0.001") // 3.6 s
	deadline := time.Now().Add(20 * time.Second)
	for {
		if j, _ := a.store.Get(context.Background(), "acme", st.ID); j.State == StateExpired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not expired by retention")
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.expectProblem(a.do("acme", "GET", m.DownloadURL, ""), problem.CodeExportExpired)
	if list := a.do("acme", "GET", "/v1/exports?limit=5", ""); list.status != http.StatusOK || !strings.Contains(string(list.body), `"expired"`) {
		t.Fatalf("list: %d %s", list.status, list.body)
	}
}

// TestAdminRoutes: the admin key lists every tenant's queued and running
// exports (or one tenant's) and cancels any of them by naming its tenant;
// a tenant key cannot use these routes, the admin key cannot use the
// tenant's, a wrong tenant is 404 and a finished export 409, each
// changing nothing.
func TestAdminRoutes(t *testing.T) {
	t.Parallel()
	a := newAPIEnv(t)
	for _, tn := range []string{"acme", "other"} {
		if err := exporttest.Seed(context.Background(), a.pool, tn, 2, 1); err != nil {
			t.Fatal(err)
		}
	}
	acme := a.create("acme", Request{Kind: KindAccounts})
	other := a.create("other", Request{Kind: KindAccounts})
	list := func(query string) []AdminStatus {
		t.Helper()
		ans := a.do(adminPrincipal, "GET", "/v1/admin/exports"+query, "")
		var out struct{ Exports []AdminStatus }
		if ans.status != http.StatusOK || json.Unmarshal(ans.body, &out) != nil {
			t.Fatalf("list%s: %d %s", query, ans.status, ans.body)
		}
		return out.Exports
	}
	all := list("")
	if len(all) != 2 || all[0].ID != acme.ID || all[0].Tenant != "acme" || all[1].ID != other.ID || all[1].Tenant != "other" ||
		all[0].State != StateQueued || all[0].Queue != QueueNormal {
		t.Fatalf("active exports: %+v", all)
	}
	if one := list("?tenant=other&limit=5"); len(one) != 1 || one[0].ID != other.ID {
		t.Fatalf("other's active exports: %+v", one)
	}
	a.expectProblem(a.do(adminPrincipal, "GET", "/v1/admin/exports?limit=0", ""), problem.CodeInvalidRequest)
	a.expectProblem(a.do(adminPrincipal, "GET", "/v1/admin/exports?limit=101", ""), problem.CodeInvalidRequest)
	a.expectProblem(a.do("acme", "GET", "/v1/admin/exports", ""), problem.CodeAdminKeyRequired)
	a.expectProblem(a.do("acme", "DELETE", "/v1/admin/tenants/acme/exports/"+acme.ID, ""), problem.CodeAdminKeyRequired)
	a.expectProblem(a.do(adminPrincipal, "DELETE", "/v1/exports/"+acme.ID, ""), problem.CodeTenantKeyRequired)
	// The wrong tenant, a malformed id: not found, nothing cancelled.
	a.expectProblem(a.do(adminPrincipal, "DELETE", "/v1/admin/tenants/other/exports/"+acme.ID, ""), problem.CodeExportNotFound)
	a.expectProblem(a.do(adminPrincipal, "DELETE", "/v1/admin/tenants/acme/exports/not-a-uuid", ""), problem.CodeExportNotFound)
	if n := len(list("")); n != 2 {
		t.Fatalf("%d active exports after refused cancels, want 2", n)
	}
	ans := a.do(adminPrincipal, "DELETE", "/v1/admin/tenants/acme/exports/"+acme.ID, "")
	var st AdminStatus
	if ans.status != http.StatusOK || json.Unmarshal(ans.body, &st) != nil || st.State != StateCancelled || st.Tenant != "acme" {
		t.Fatalf("cancel: %d %s", ans.status, ans.body)
	}
	a.expectProblem(a.do(adminPrincipal, "DELETE", "/v1/admin/tenants/acme/exports/"+acme.ID, ""), problem.CodeExportFinished)
	if left := list(""); len(left) != 1 || left[0].ID != other.ID {
		t.Fatalf("active after cancel: %+v", left)
	}
	// The tenant sees its export cancelled.
	if got := decodeStatus(t, a.do("acme", "GET", "/v1/exports/"+acme.ID, "")); got.State != StateCancelled {
		t.Fatalf("acme's view: %+v", got)
	}
}
