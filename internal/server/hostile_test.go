package server_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// stateCount counts every row a request could write: ledger rows, journal,
// tenants, keys and settings with their audit.
func stateCount(t *testing.T, url string) int {
	t.Helper()
	return countRows(t, url, "transactions", "entries", "journal", "accounts",
		"tenants", "api_keys", "control_settings", "control_audit",
		"feature_tenants", "feature_versions", "feature_events", "export_jobs")
}

const okPosting = `"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]`

// hostileCase is one body a hostile or broken client may send.
type hostileCase struct {
	name, method, path, body string
	hdr                      []string
	status                   int
	code                     string
}

// hostileBodies: each must fail alone, at decode time, with a 4xx
// problem+json and a stable code.
func hostileBodies() []hostileCase {
	tx := func(inner string) string { return `{"idempotency_key":"h",` + inner + `}` }
	deep := strings.Repeat(`{"x":`, 40) + `1` + strings.Repeat(`}`, 40)
	ev := func(id, fields string) string {
		return `{"id":` + id + `,"time":"2026-01-01T00:00:00Z","fields":` + fields + `}`
	}
	def := func(extra string) string {
		return `{"name":"f","source":"events","entity":"card","aggregation":"count","windows":["1h"],` + extra + `}`
	}
	return []hostileCase{
		{"NUL in metadata value", "POST", "/v1/transactions", tx(`"metadata":{"note":"a\u0000b"},` + okPosting), nil, 400, "nul_character"},
		{"NUL in metadata name", "POST", "/v1/transactions", tx(`"metadata":{"a\u0000":1},` + okPosting), nil, 400, "nul_character"},
		{"NUL in idempotency key", "POST", "/v1/transactions", `{"idempotency_key":"k\u0000",` + okPosting + `}`, nil, 400, "nul_character"},
		{"NUL in account metadata", "POST", "/v1/accounts", `{"id":"n","asset":"USD","metadata":{"a":"\u0000"}}`, nil, 400, "nul_character"},
		{"NUL in batch item", "POST", "/v1/transactions/batch", `{"transactions":[` + tx(okPosting) + `,{"idempotency_key":"\u0000",` + okPosting + `}]}`, nil, 400, "nul_character"},
		{"NUL async", "POST", "/v1/transactions", tx(`"metadata":{"a":"\u0000"},` + okPosting), []string{"Prefer", "respond-async"}, 400, "nul_character"},
		{"lone surrogate", "POST", "/v1/transactions", tx(`"metadata":{"a":"\ud800"},` + okPosting), nil, 400, "invalid_utf8"},
		{"lone surrogate in key", "POST", "/v1/transactions", `{"idempotency_key":"\udfff",` + okPosting + `}`, nil, 400, "invalid_utf8"},
		{"invalid UTF-8", "POST", "/v1/transactions", "{\"idempotency_key\":\"k\xc3\x28\"," + okPosting + "}", nil, 400, "invalid_utf8"},
		{"duplicate amount", "POST", "/v1/transactions", tx(`"postings":[{"source":"a","destination":"b","amount":"1","amount":"90000","asset":"USD"}]`), nil, 400, "duplicate_member"},
		{"duplicate metadata member", "POST", "/v1/transactions", tx(`"metadata":{"a":1,"a":2},` + okPosting), nil, 400, "duplicate_member"},
		{"case-variant member", "POST", "/v1/transactions", tx(`"postings":[{"source":"a","destination":"b","AMOUNT":"7","asset":"USD"}]`), nil, 400, "unknown_member"},
		{"case-variant beside member", "POST", "/v1/transactions", tx(`"postings":[{"source":"a","destination":"b","amount":"1","Amount":"7","asset":"USD"}]`), nil, 400, "unknown_member"},
		{"huge amount", "POST", "/v1/transactions", tx(`"postings":[{"source":"a","destination":"b","amount":"1` + strings.Repeat("0", 60) + `","asset":"USD"}]`), nil, 400, "invalid_amount"},
		{"amount as exponent", "POST", "/v1/transactions", tx(`"postings":[{"source":"a","destination":"b","amount":1e999,"asset":"USD"}]`), nil, 400, "invalid_amount"},
		{"huge metadata number", "POST", "/v1/transactions", tx(`"metadata":{"n":1e999999},` + okPosting), nil, 400, "number_out_of_range"},
		{"huge timeout", "POST", "/v1/transactions", tx(`"type":"pending","timeout_seconds":1e30,` + okPosting), nil, 400, "malformed_json"},
		{"deep nesting", "POST", "/v1/transactions", tx(`"metadata":` + deep + `,` + okPosting), nil, 400, "nesting_too_deep"},
		{"deep nesting account", "POST", "/v1/accounts", `{"id":"d","asset":"USD","metadata":` + deep + `}`, nil, 400, "nesting_too_deep"},
		{"text/plain", "POST", "/v1/transactions", tx(okPosting), []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"form", "POST", "/v1/transactions", tx(okPosting), []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"no content type", "POST", "/v1/transactions", tx(okPosting), []string{"Content-Type", ""}, 415, "unsupported_media_type"},
		{"latin1 charset", "POST", "/v1/transactions", tx(okPosting), []string{"Content-Type", "application/json; charset=iso-8859-1"}, 415, "unsupported_media_type"},
		{"body over limit", "POST", "/v1/transactions", tx(`"metadata":{"a":"` + strings.Repeat("x", 70<<10) + `"},` + okPosting), nil, 413, "body_too_large"},
		{"trailing value", "POST", "/v1/transactions", tx(okPosting) + `{}`, nil, 400, "malformed_json"},
		{"dot account", "POST", "/v1/accounts", `{"id":".","asset":"USD"}`, nil, 400, "invalid_account"},
		{"dot-dot account", "POST", "/v1/accounts", `{"id":"..","asset":"USD"}`, nil, 400, "invalid_account"},
		{"dot-dot segment", "POST", "/v1/accounts", `{"id":"a/../b","asset":"USD"}`, nil, 400, "invalid_account"},
		// Feature definitions, events, evaluate and batch reads.
		{"NUL in event id", "POST", "/v1/events", ev(`"e\u0000"`, `{}`), nil, 400, "nul_character"},
		{"lone surrogate in event field", "POST", "/v1/events", ev(`"e1"`, `{"card":"\ud800"}`), nil, 400, "invalid_utf8"},
		{"invalid UTF-8 in event field", "POST", "/v1/events", ev(`"e1"`, "{\"card\":\"\xc3\x28\"}"), nil, 400, "invalid_utf8"},
		{"duplicate event field", "POST", "/v1/events", ev(`"e1"`, `{"card":"a","card":"b"}`), nil, 400, "duplicate_member"},
		{"case-variant event member", "POST", "/v1/events", `{"ID":"e1","time":"2026-01-01T00:00:00Z","fields":{}}`, nil, 400, "unknown_member"},
		{"huge event integer", "POST", "/v1/events", ev(`"e1"`, `{"amount":1`+strings.Repeat("0", 60)+`}`), nil, 400, "invalid_event"},
		{"deep event fields", "POST", "/v1/events", ev(`"e1"`, deep), nil, 400, "nesting_too_deep"},
		{"events as text", "POST", "/v1/events", ev(`"e1"`, `{}`), []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"NUL in feature filter", "POST", "/v1/features/definitions", def(`"filter":"type == \"\u0000\""`), nil, 400, "nul_character"},
		{"duplicate feature name", "POST", "/v1/features/definitions", def(`"name":"g"`), nil, 400, "duplicate_member"},
		{"case-variant feature member", "POST", "/v1/features/definitions", def(`"Windows":["1h"]`), nil, 400, "unknown_member"},
		{"lone surrogate in evaluate", "POST", "/v1/features/evaluate", `{"event":` + ev(`"\udfff"`, `{}`) + `}`, nil, 400, "invalid_utf8"},
		{"duplicate evaluate member", "POST", "/v1/features/evaluate", `{"event":` + ev(`"e1"`, `{}`) + `,"record":true,"record":false}`, nil, 400, "duplicate_member"},
		{"NUL entity in batch read", "POST", "/v1/features/read", `{"entities":[{"type":"card","id":"a\u0000"}]}`, nil, 400, "nul_character"},
		// Export requests.
		{"NUL export account", "POST", "/v1/exports", `{"kind":"entries","account_id":"a\u0000","from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`, nil, 400, "nul_character"},
		{"duplicate export kind", "POST", "/v1/exports", `{"kind":"accounts","kind":"entries"}`, nil, 400, "duplicate_member"},
		{"case-variant export member", "POST", "/v1/exports", `{"Kind":"accounts"}`, nil, 400, "unknown_member"},
		{"invalid UTF-8 export format", "POST", "/v1/exports", "{\"kind\":\"accounts\",\"format\":\"\xff\"}", nil, 400, "invalid_utf8"},
		{"huge export time", "POST", "/v1/exports", `{"kind":"entries","from":"2026-01-01T00:00:00Z","to":"99999-01-01T00:00:00Z"}`, nil, 400, "malformed_json"},
		{"export as form", "POST", "/v1/exports", `{"kind":"accounts"}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
	}
}

// TestHostileBodiesFailAloneAndChangeNothing sends every hostile body (and
// hostile admin bodies and read paths) to a running server: each gets its
// 4xx problem and stable code, no 5xx, and no row of any table changes.
func TestHostileBodiesFailAloneAndChangeNothing(t *testing.T) {
	t.Parallel()
	admin, c, url := seedLedger(t)
	before := stateCount(t, url)
	check := func(cl *client, tc hostileCase) {
		t.Helper()
		var body any
		if tc.body != "" {
			body = tc.body
		}
		r := cl.do(t, tc.method, tc.path, body, tc.hdr...)
		if r.status != tc.status || r.body["code"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s (%s)", tc.name, r.status, r.body["code"], tc.status, tc.code, r.raw)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: content type %q", tc.name, ct)
		}
	}
	for _, tc := range hostileBodies() {
		check(c, tc)
	}
	for _, tc := range []hostileCase{
		{"NUL tenant id", "POST", "/v1/admin/tenants", `{"id":"x\u0000"}`, nil, 400, "nul_character"},
		{"NUL tenant name", "POST", "/v1/admin/tenants", `{"id":"x","name":"\u0000"}`, nil, 400, "nul_character"},
		{"duplicate tenant id", "POST", "/v1/admin/tenants", `{"id":"x","id":"y"}`, nil, 400, "duplicate_member"},
		{"NUL setting reason", "PATCH", "/v1/admin/settings/tenants/acme", `{"set":{"quota.burst":"5"},"reason":"\u0000"}`, nil, 400, "nul_character"},
		{"duplicate setting", "PATCH", "/v1/admin/settings/tenants/acme", `{"set":{"quota.burst":"5","quota.burst":"6"},"reason":"r"}`, nil, 400, "duplicate_member"},
		{"case-variant setting body", "PATCH", "/v1/admin/settings/tenants/acme", `{"SET":{"quota.burst":"5"},"reason":"r"}`, nil, 400, "unknown_member"},
		{"invalid UTF-8 reason", "PATCH", "/v1/admin/settings/tenants/acme", "{\"set\":{\"quota.burst\":\"5\"},\"reason\":\"\xff\"}", nil, 400, "invalid_utf8"},
		{"preset as form", "POST", "/v1/admin/presets/surge/apply", `{"tenant":"acme","reason":"r"}`, []string{"Content-Type", "multipart/form-data"}, 415, "unsupported_media_type"},
		{"NUL in revoked key id", "DELETE", "/v1/admin/tenants/acme/api-keys/key_%00", "", nil, 404, "key_not_found"},
		{"NUL in key's tenant", "POST", "/v1/admin/tenants/a%00/api-keys", "", nil, 404, "tenant_not_found"},
		{"NUL in history filter", "GET", "/v1/admin/settings/history?tenant=%00", "", nil, 400, "invalid_request"},
		{"NUL in settings tenant", "GET", "/v1/admin/settings/tenants/a%00", "", nil, 404, "tenant_not_found"},
	} {
		check(admin, tc)
	}
	// Read routes refuse what the database cannot hold with a 4xx, never
	// a 5xx and never commit_failed.
	for _, tc := range []hostileCase{
		{"NUL account id", "GET", "/v1/accounts/a%00b", "", nil, 400, "invalid_account"},
		{"NUL account entries", "GET", "/v1/accounts/a%00b/entries", "", nil, 400, "invalid_account"},
		{"NUL account balance", "GET", "/v1/accounts/a%00b/balance", "", nil, 400, "invalid_account"},
		{"invalid UTF-8 account id", "GET", "/v1/accounts/a%ffb", "", nil, 400, "invalid_account"},
		{"NUL idempotency key", "GET", "/v1/transactions?idempotency_key=a%00", "", nil, 400, "nul_character"},
		{"invalid UTF-8 idempotency key", "GET", "/v1/transactions?idempotency_key=a%ff", "", nil, 400, "invalid_utf8"},
	} {
		check(c, tc)
	}
	if after := stateCount(t, url); after != before {
		t.Fatalf("hostile input changed %d rows", after-before)
	}
	// The server still works for this tenant.
	if r := c.do(t, "POST", "/v1/transactions", transferBody("after", "a", "b", "1")); r.status != 201 {
		t.Fatalf("transfer after hostile input: %d %s", r.status, r.raw)
	}
}

// TestHostileTenantNeverChangesNeighbourOutcomes: one tenant sends hostile
// bodies from 4 goroutines while another sends 400 plain transfers; every
// transfer of the neighbour commits (201) and its balance adds up, every
// hostile request gets a 4xx, and no commit batch failed.
func TestHostileTenantNeverChangesNeighbourOutcomes(t *testing.T) {
	t.Parallel()
	admin, _ := startServer(t)
	evil, good := newTenant(t, admin, "evil"), newTenant(t, admin, "good")
	for _, cl := range []*client{evil, good} {
		for _, id := range []string{"a", "b"} {
			if r := cl.do(t, "POST", "/v1/accounts", map[string]any{"id": id, "asset": "USD"}); r.status != 201 {
				t.Fatalf("account %s: %d %s", id, r.status, r.raw)
			}
		}
	}
	bodies := hostileBodies()
	const transfers, goodWorkers, evilWorkers = 400, 8, 4
	stop := make(chan struct{})
	var evilWG, goodWG sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	hostile := 0
	for w := range evilWorkers {
		evilWG.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tc := bodies[i%len(bodies)]
				r, err := evil.try(tc.method, tc.path, tc.body, tc.hdr...)
				mu.Lock()
				hostile++
				// Admission may shed the flood before it is decoded (503
				// overloaded: not started); anything else must be a 4xx.
				shed := r.status == 503 && r.body["code"] == "overloaded"
				if err != nil || (!shed && (r.status < 400 || r.status > 499)) {
					problems = append(problems, fmt.Sprintf("hostile %s: %d %v %s", tc.name, r.status, err, r.raw))
				}
				mu.Unlock()
			}
		})
	}
	next := make(chan int, transfers)
	for i := range transfers {
		next <- i
	}
	close(next)
	for range goodWorkers {
		goodWG.Go(func() {
			for i := range next {
				r, err := good.try("POST", "/v1/transactions", transferBody(fmt.Sprintf("t%d", i), "a", "b", "3"))
				if err != nil || r.status != 201 {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("neighbour transfer %d: %d %v %s", i, r.status, err, r.raw))
					mu.Unlock()
				}
			}
		})
	}
	goodWG.Wait()
	close(stop)
	evilWG.Wait()
	for i, p := range problems {
		if i == 20 {
			t.Errorf("… and %d more", len(problems)-20)
			break
		}
		t.Error(p)
	}
	t.Logf("%d hostile requests beside %d neighbour transfers", hostile, transfers)
	if hostile < evilWorkers {
		t.Fatalf("only %d hostile requests were sent", hostile)
	}
	// Reads rank below payments and may have been shed during the flood.
	r := waitStatus(t, good, 200, "GET", "/v1/accounts/b")
	if r.body["credits_posted"] != fmt.Sprint(3*transfers) {
		t.Fatalf("neighbour's balance %v, want %d", r.body["credits_posted"], 3*transfers)
	}
	if m := metricValue(t, admin, "bulwark_ledger_batch_failures_total"); m != 0 {
		t.Fatalf("%v commit batches failed", m)
	}
	if r := waitStatus(t, evil, 200, "GET", "/v1/accounts/b"); r.body["seq"] != float64(0) {
		t.Fatalf("hostile tenant's account changed: %s", r.raw)
	}
}

// TestReadAfterWriteSeesTheWrite: an account read right after a 201 shows
// the transfer, every time, and is never marked stale.
func TestReadAfterWriteSeesTheWrite(t *testing.T) {
	t.Parallel()
	admin, _ := startServer(t)
	c := newTenant(t, admin, "acme")
	for _, id := range []string{"a", "b"} {
		c.do(t, "POST", "/v1/accounts", map[string]any{"id": id, "asset": "USD"})
	}
	for i := 1; i <= 20; i++ {
		c.do(t, "GET", "/v1/accounts/b", nil) // may populate a cache
		if r := c.do(t, "POST", "/v1/transactions", transferBody(fmt.Sprintf("k%d", i), "a", "b", "1")); r.status != 201 {
			t.Fatalf("transfer %d: %d %s", i, r.status, r.raw)
		}
		r := c.do(t, "GET", "/v1/accounts/b", nil)
		if r.body["credits_posted"] != fmt.Sprint(i) || r.header.Get("Bulwark-Stale") != "" {
			t.Fatalf("read after transfer %d: credits_posted %v (stale header %q), want %d",
				i, r.body["credits_posted"], r.header.Get("Bulwark-Stale"), i)
		}
	}
}

// TestReplayIgnoresMetadataOrderAndBatchErrorsNameTheItem: the same body
// with metadata members in another order is a replay, not a conflict; a
// batch item refused while decoding carries its index.
func TestReplayIgnoresMetadataOrderAndBatchErrorsNameTheItem(t *testing.T) {
	t.Parallel()
	admin, _ := startServer(t)
	c := newTenant(t, admin, "acme")
	for _, id := range []string{"a", "b"} {
		c.do(t, "POST", "/v1/accounts", map[string]any{"id": id, "asset": "USD"})
	}
	first := `{"idempotency_key":"m","metadata":{"order":7,"note":{"y":1,"x":2}},` + okPosting + `}`
	again := `{"metadata":{"note":{"x":2,"y":1},"order":7},"idempotency_key":"m",` + okPosting + `}`
	if r := c.do(t, "POST", "/v1/transactions", first); r.status != 201 {
		t.Fatalf("first: %d %s", r.status, r.raw)
	}
	if r := c.do(t, "POST", "/v1/transactions", again); r.status != 200 || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("reordered metadata: %d %s, want a 200 replay", r.status, r.raw)
	}
	batch := `{"transactions":[{"idempotency_key":"x1",` + okPosting + `},` +
		`{"idempotency_key":"x2","postings":[{"source":"a","destination":"b","amount":5,"asset":"USD"}]}]}`
	if r := c.do(t, "POST", "/v1/transactions/batch", batch); r.status != 400 || r.body["code"] != "invalid_amount" || r.body["index"] != float64(1) {
		t.Fatalf("bad amount in item 1: %d %s", r.status, r.raw)
	}
}

// metricValue reads an unlabelled counter or gauge from /metrics.
func metricValue(t *testing.T, c *client, name string) float64 {
	t.Helper()
	r := c.do(t, "GET", "/metrics", nil)
	for _, line := range strings.Split(string(r.raw), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("metric %s: %q: %v", name, line, err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
