package client_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulwark-ledger/bulwark/client"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/server"
	"github.com/bulwark-ledger/bulwark/internal/server/servertest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const adminKey = "bwa_test_admin_key"

// startServer runs an in-process server (api and workers roles) on a
// fresh database and returns its base URL.
func startServer(t *testing.T) string {
	t.Helper()
	return servertest.Start(t, server.Config{PostgresURL: pgtest.NewDB(t), AdminKey: adminKey,
		Roles:   []string{server.RoleAPI, server.RoleWorkers},
		DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// newClient returns a client; t.Cleanup closes it.
func newClient(t *testing.T, base, key string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(base, key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newTenant creates a tenant with the admin client and returns its key.
func newTenant(t *testing.T, admin *client.Client, id string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.CreateTenant(ctx, id, "Tenant "+id); err != nil {
		t.Fatal(err)
	}
	k, err := admin.CreateKey(ctx, id, client.KeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	return k.Key
}

// setup starts a server, creates a tenant and the accounts world (rule
// none) and a wallet (debits must not exceed credits), and returns the
// admin client and the tenant's key.
func setup(t *testing.T) (base string, admin *client.Client, key string) {
	t.Helper()
	base = startServer(t)
	admin = newClient(t, base, adminKey)
	key = newTenant(t, admin, "acme")
	c := newClient(t, base, key)
	ctx := context.Background()
	for _, in := range []client.AccountInput{
		{ID: "world", Asset: "EUR", Scale: 2, Rule: client.RuleNone},
		{ID: "customer:1/wallet", Asset: "EUR", Scale: 2, Rule: client.RuleDebitsMustNotExceedCredits},
		{ID: "merchant:7", Asset: "EUR", Scale: 2},
	} {
		if _, err := c.CreateAccount(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	return base, admin, key
}

// counter counts the requests per "METHOD path" that reach the server.
type counter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func newCounter() *counter { return &counter{next: http.DefaultTransport, n: map[string]int{}} }

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *counter) get(route string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[route]
}

// faulty fails the first fail POSTs to path: with a fake 503 commit_failed
// (before the server sees them) or, when lose is set, by forwarding them
// and then losing the answer (the write committed, the caller does not
// know). It records the bodies sent.
type faulty struct {
	next   http.RoundTripper
	path   string
	lose   bool
	fail   atomic.Int32
	mu     sync.Mutex
	bodies []string
}

func (f *faulty) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost || r.URL.Path != f.path {
		return f.next.RoundTrip(r)
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.bodies = append(f.bodies, string(b))
	f.mu.Unlock()
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(b))
	if f.fail.Add(-1) < 0 {
		return f.next.RoundTrip(r2)
	}
	if f.lose {
		resp, err := f.next.RoundTrip(r2)
		if err == nil {
			resp.Body.Close()
		}
		return nil, fmt.Errorf("connection reset by test")
	}
	return &http.Response{
		StatusCode: http.StatusServiceUnavailable, Request: r,
		Header: http.Header{"Content-Type": {"application/problem+json"}, "Retry-After": {"1"}},
		Body:   io.NopCloser(bytes.NewReader([]byte(`{"type":"about:blank","title":"Service Unavailable","status":503,"code":"commit_failed","detail":"test"}`))),
	}, nil
}

// transfer is a posted transfer of amount EUR cents.
func transfer(key, from, to string, amount uint64) client.Tx {
	return client.Tx{IdempotencyKey: key, Postings: []client.Posting{{Source: from, Destination: to, Amount: client.Uint64(amount), Asset: "EUR"}}}
}
