package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/server"
)

func transferBody(key, src, dst, amt string) map[string]any {
	return map[string]any{"idempotency_key": key, "postings": []map[string]string{
		{"source": src, "destination": dst, "amount": amt, "asset": "USD"}}}
}

// rowCount counts transactions, entries and journal rows: bad input must
// change none.
func rowCount(t *testing.T, url string) int {
	t.Helper()
	return countRows(t, url, "transactions", "entries", "journal")
}

// countRows sums the row counts of tables.
func countRows(t *testing.T, url string, tables ...string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	total := 0
	for _, table := range tables {
		var n int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

// seedLedger starts a server with tenant acme, accounts a and b (USD,
// scale 2) and one committed transfer "ok" of 5 from a to b.
func seedLedger(t *testing.T) (admin, c *client, url string) {
	t.Helper()
	admin, url = startServer(t)
	c = newTenant(t, admin, "acme")
	for _, id := range []string{"a", "b"} {
		if r := c.do(t, "POST", "/v1/accounts", map[string]any{"id": id, "asset": "USD", "scale": 2}); r.status != 201 {
			t.Fatalf("account %s: %d %s", id, r.status, r.raw)
		}
	}
	if r := c.do(t, "POST", "/v1/transactions", transferBody("ok", "a", "b", "5")); r.status != 201 {
		t.Fatalf("transfer: %d %s", r.status, r.raw)
	}
	return admin, c, url
}

func TestBadInputGetsProblemAndWritesNothing(t *testing.T) {
	t.Parallel()
	_, c, url := seedLedger(t)
	before := rowCount(t, url)
	bigBatch := `{"transactions":[` + strings.Repeat(`{"idempotency_key":"x","postings":[]},`, 8190) + `{"idempotency_key":"y","postings":[]}]}`
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
		hdr                []string
	}{
		{"malformed", "POST", "/v1/transactions", `{"idempotency_key":`, 400, "malformed_json", nil},
		{"unknown field", "POST", "/v1/transactions", `{"idempotency_key":"k","foo":1}`, 400, "unknown_member", nil},
		{"float amount", "POST", "/v1/transactions", `{"idempotency_key":"k","postings":[{"source":"a","destination":"b","amount":1.5,"asset":"USD"}]}`, 400, "invalid_amount", nil},
		{"negative amount", "POST", "/v1/transactions", transferBody("k", "a", "b", "-1"), 400, "invalid_amount", nil},
		{"zero amount", "POST", "/v1/transactions", transferBody("k", "a", "b", "0"), 400, "invalid_amount", nil},
		{"unknown account", "POST", "/v1/transactions", transferBody("k", "a", "ghost", "1"), 404, "account_not_found", nil},
		{"mixed assets", "POST", "/v1/transactions", map[string]any{"idempotency_key": "k", "postings": []map[string]string{
			{"source": "a", "destination": "b", "amount": "1", "asset": "EUR"}}}, 422, "asset_mismatch", nil},
		{"key reuse", "POST", "/v1/transactions", transferBody("ok", "a", "b", "6"), 409, "idempotency_conflict", nil},
		{"key reuse async", "POST", "/v1/transactions", transferBody("ok", "a", "b", "6"), 409, "idempotency_conflict", []string{"Prefer", "respond-async"}},
		{"duplicate keys in batch", "POST", "/v1/transactions/batch", map[string]any{"transactions": []any{
			transferBody("d", "a", "b", "1"), transferBody("d", "a", "b", "1")}}, 400, "duplicate_idempotency_key", nil},
		{"oversized batch", "POST", "/v1/transactions/batch", bigBatch, 413, "batch_too_large", nil},
		{"post unknown pending", "POST", "/v1/transactions", map[string]any{"idempotency_key": "p", "type": "post_pending",
			"pending_id": "01a2018d-4882-7aa2-8394-36e9b841fc7a"}, 404, "pending_not_found", nil},
		{"unknown transaction", "GET", "/v1/transactions/nope", nil, 404, "transaction_not_found", nil},
		{"unknown route", "GET", "/v1/nothing", nil, 404, "not_found", nil},
		{"admin on tenant route", "GET", "/v1/accounts/a", nil, 0, "", nil},
	}
	for _, tc := range cases {
		if tc.status == 0 {
			continue
		}
		r := c.do(t, tc.method, tc.path, tc.body, tc.hdr...)
		if r.status != tc.status || r.body["code"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, r.status, r.body["code"], tc.status, tc.code)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: content type %q", tc.name, ct)
		}
	}
	if after := rowCount(t, url); after != before {
		t.Fatalf("bad input wrote %d rows", after-before)
	}
}

func TestAuthAndTenantIsolation(t *testing.T) {
	t.Parallel()
	admin, _ := startServer(t)
	acme, other := newTenant(t, admin, "acme"), newTenant(t, admin, "other")
	acme.do(t, "POST", "/v1/accounts", map[string]any{"id": "secret", "asset": "USD"})
	if r := other.do(t, "GET", "/v1/accounts/secret", nil); r.status != 404 {
		t.Fatalf("other tenant reads acme's account: %d", r.status)
	}
	anon := &client{base: admin.base, http: admin.http}
	if r := anon.do(t, "GET", "/v1/accounts/secret", nil); r.status != 401 || r.body["code"] != "unauthenticated" {
		t.Fatalf("no key: %d %v", r.status, r.body["code"])
	}
	if r := admin.do(t, "GET", "/v1/accounts/secret", nil); r.status != 403 {
		t.Fatalf("admin key on tenant route: %d", r.status)
	}
	if r := acme.do(t, "POST", "/v1/admin/tenants", map[string]string{"id": "evil"}); r.status != 403 {
		t.Fatalf("tenant key on admin route: %d", r.status)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml"} {
		if r := anon.do(t, "GET", p, nil); r.status != 200 {
			t.Errorf("%s: %d", p, r.status)
		}
	}
}

func TestAsyncJournalAppliesAndReportsOutcome(t *testing.T) {
	t.Parallel()
	admin, _ := startServer(t)
	c := newTenant(t, admin, "acme")
	c.do(t, "POST", "/v1/accounts", map[string]any{"id": "a", "asset": "USD"})
	c.do(t, "POST", "/v1/accounts", map[string]any{"id": "b", "asset": "USD", "rule": "debits_must_not_exceed_credits"})
	ok := c.do(t, "POST", "/v1/transactions", transferBody("j1", "a", "b", "10"), "Prefer", "respond-async")
	bad := c.do(t, "POST", "/v1/transactions", transferBody("j2", "b", "a", "11"), "Prefer", "respond-async")
	if ok.status != 202 || bad.status != 202 || ok.header.Get("Location") == "" {
		t.Fatalf("accept: %d %d %q", ok.status, bad.status, ok.header.Get("Location"))
	}
	want := map[string]string{ok.header.Get("Location"): "applied", bad.header.Get("Location"): "rejected"}
	for loc, state := range want {
		var r response
		for i := 0; i < 200; i++ {
			if r = c.do(t, "GET", loc, nil); r.body["state"] != "accepted" {
				break
			}
			sleep(t)
		}
		if r.body["state"] != state {
			t.Fatalf("%s: state %v, want %s (%s)", loc, r.body["state"], state, r.raw)
		}
	}
	if r := c.do(t, "GET", "/v1/transactions?idempotency_key=j1", nil); r.status != 200 {
		t.Fatalf("applied transaction not readable: %d", r.status)
	}
	// Resending an accepted request returns the same journal entry.
	again := c.do(t, "POST", "/v1/transactions", transferBody("j1", "a", "b", "10"), "Prefer", "respond-async")
	if again.body["id"] != ok.body["id"] {
		t.Fatalf("resend journaled twice: %v vs %v", again.body["id"], ok.body["id"])
	}
}

// TestEveryRoleServesOps: a process without the api role still serves
// /metrics, /healthz and /readyz, and answers other paths with a problem.
func TestEveryRoleServesOps(t *testing.T) {
	t.Parallel()
	c, _ := startServerRoles(t, server.RoleWorkers)
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if r := c.do(t, "GET", p, nil); r.status != 200 {
			t.Errorf("workers-only %s: %d", p, r.status)
		}
	}
	if r := c.do(t, "GET", "/metrics", nil); !strings.Contains(string(r.raw), "bulwark_control_applied_version") {
		t.Error("workers-only /metrics lacks the control plane's metrics")
	}
	if r := c.do(t, "GET", "/v1/accounts/a", nil); r.status != 404 || r.body["code"] != "not_found" {
		t.Errorf("tenant route on a workers-only process: %d %s", r.status, r.raw)
	}
}
