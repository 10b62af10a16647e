package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
)

// TestRetry: a 503 commit_failed (answered before the server saw the
// request) and a lost answer (the server committed, the connection broke)
// are each retried with the same body, so the same key, and the transfer
// exists once.
func TestRetry(t *testing.T) {
	base, _, key := setup(t)
	for _, tc := range []struct {
		name  string
		path  string
		lose  bool
		opts  []client.CallOption
		batch bool
	}{
		{"503 single", "/v1/transactions", false, []client.CallOption{client.NoBatch()}, false},
		{"lost answer single", "/v1/transactions", true, []client.CallOption{client.NoBatch()}, false},
		{"503 batched", "/v1/transactions/batch", false, nil, true},
		{"lost answer batched", "/v1/transactions/batch", true, nil, true},
	} {
		f := &faulty{next: http.DefaultTransport, path: tc.path, lose: tc.lose}
		f.fail.Store(1)
		c := newClient(t, base, key, client.WithHTTPClient(&http.Client{Transport: f}), client.WithRetry(3, 10*time.Second))
		k := "retry-" + strings.ReplaceAll(tc.name, " ", "-")
		start := time.Now()
		tx, err := c.Transfer(context.Background(), transfer(k, "world", "merchant:7", 1), tc.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !tc.lose && time.Since(start) < time.Second {
			t.Errorf("%s: retried after %s, before the Retry-After of 1 s", tc.name, time.Since(start))
		}
		if tx.Replayed != tc.lose {
			t.Errorf("%s: replayed %v, want %v", tc.name, tx.Replayed, tc.lose)
		}
		if len(f.bodies) != 2 || f.bodies[0] != f.bodies[1] || !strings.Contains(f.bodies[0], k) {
			t.Errorf("%s: bodies %q, want the same body twice", tc.name, f.bodies)
		}
		got, err := c.TransactionByKey(context.Background(), k)
		if err != nil || got.ID != tx.ID {
			t.Errorf("%s: by key %+v, %v", tc.name, got, err)
		}
	}
	m, err := newClient(t, base, key).Account(context.Background(), "merchant:7")
	if err != nil || m.CreditsPosted != "4" {
		t.Fatalf("merchant credits %+v, %v: want 4, each transfer once", m, err)
	}
}

// TestRetryBounds: never on 4xx; at most maxAttempts; a non-idempotent
// admin call is not retried after a transport error.
func TestRetryBounds(t *testing.T) {
	base, _, key := setup(t)
	f := &faulty{next: http.DefaultTransport, path: "/v1/transactions"}
	f.fail.Store(10)
	c := newClient(t, base, key, client.WithHTTPClient(&http.Client{Transport: f}), client.WithRetry(2, 10*time.Second), client.WithoutBatching())
	_, err := c.Transfer(context.Background(), transfer("bounded", "world", "merchant:7", 1))
	var e *client.Error
	if !errors.Is(err, client.ErrCommitFailed) || !errors.As(err, &e) || e.RetryAfter != time.Second || !e.Temporary() {
		t.Fatalf("after 2 attempts: %v", err)
	}
	if len(f.bodies) != 2 {
		t.Fatalf("%d attempts, want 2", len(f.bodies))
	}
	cnt := newCounter()
	c4 := newClient(t, base, key, client.WithHTTPClient(&http.Client{Transport: cnt}), client.WithoutBatching())
	if _, err := c4.Transfer(context.Background(), transfer("poor", "customer:1/wallet", "merchant:7", 1)); !errors.Is(err, client.ErrInsufficientFunds) {
		t.Fatal(err)
	}
	if n := cnt.get("POST /v1/transactions"); n != 1 {
		t.Fatalf("a 422 was sent %d times, want once", n)
	}
	fa := &faulty{next: http.DefaultTransport, path: "/v1/admin/tenants", lose: true}
	fa.fail.Store(1)
	a := newClient(t, base, adminKey, client.WithHTTPClient(&http.Client{Transport: fa}))
	if _, err := a.CreateTenant(context.Background(), "lost", ""); err == nil || len(fa.bodies) != 1 {
		t.Fatalf("CreateTenant after a lost answer: %v after %d attempts, want the error after 1", err, len(fa.bodies))
	}
}

// TestQuotaNotRetried: 429 quota_exceeded is the caller's own quota; the
// client returns it with its Retry-After instead of spending more.
func TestQuotaNotRetried(t *testing.T) {
	base, admin, key := setup(t)
	ctx := context.Background()
	if _, err := admin.ChangeSettings(ctx, "acme", client.SettingsPatch{Set: map[string]any{"quota.requests_per_sec": 0.1, "quota.burst": 1}}); err != nil {
		t.Fatal(err)
	}
	cnt := newCounter()
	c := newClient(t, base, key, client.WithHTTPClient(&http.Client{Transport: cnt}))
	var err error
	deadline := time.Now().Add(10 * time.Second) // settings apply within about a second
	for err == nil && time.Now().Before(deadline) {
		_, err = c.Account(ctx, "world")
	}
	var e *client.Error
	if !errors.Is(err, client.ErrQuotaExceeded) || !errors.As(err, &e) || e.Status != 429 || e.RetryAfter <= 0 || e.Temporary() {
		t.Fatalf("over quota: %v", err)
	}
	before := cnt.get("GET /v1/accounts/world")
	if _, err := c.Account(ctx, "world"); !errors.Is(err, client.ErrQuotaExceeded) {
		t.Fatalf("still over quota: %v", err)
	}
	if n := cnt.get("GET /v1/accounts/world") - before; n != 1 {
		t.Fatalf("a 429 was sent %d times, want once", n)
	}
}
