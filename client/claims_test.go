package client_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
	"github.com/bulwark-ledger/bulwark/internal/admission"
)

// The client cannot import the server's packages; this keeps the header
// names it sends equal to the ones admission reads.
func TestClaimHeaders(t *testing.T) {
	if client.SourceHeader != admission.SourceHeader || client.TrafficHeader != admission.TrafficHeader {
		t.Fatalf("client headers %q, %q; admission reads %q, %q", client.SourceHeader, client.TrafficHeader,
			admission.SourceHeader, admission.TrafficHeader)
	}
}

// TestClaims: a claim travels in the headers admission reads. The tenant's
// crawler quota is 0, so a call claiming crawler traffic is refused with
// quota_exceeded while the same call without the claim (or overriding the
// client's claim per call) succeeds; an invalid claim fails before
// anything is sent.
func TestClaims(t *testing.T) {
	ctx := context.Background()
	base := startServer(t)
	admin := newClient(t, base, adminKey)
	if _, err := admin.CreateTenant(ctx, "crawly", "Crawly"); err != nil {
		t.Fatal(err)
	}
	k, err := admin.CreateKey(ctx, "crawly", client.KeyInput{TrafficTypes: []string{"crawler"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ChangeSettings(ctx, "crawly", client.SettingsPatch{
		Set: map[string]any{"quota.crawler.requests_per_sec": "0", "quota.crawler.burst": "0"}, Reason: "test",
	}); err != nil {
		t.Fatal(err)
	}
	plain := newClient(t, base, k.Key)
	for _, id := range []string{"a", "b"} {
		if _, err := plain.CreateAccount(ctx, client.AccountInput{ID: id, Asset: "EUR"}); err != nil {
			t.Fatal(err)
		}
	}
	crawler := client.ContextWithClaims(ctx, client.Claims{Traffic: "crawler"})
	// The settings reach the edge within a second.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := plain.Account(crawler, "a")
		if errors.Is(err, client.ErrQuotaExceeded) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("crawler claim not refused by its zero quota: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := plain.Account(ctx, "a"); err != nil {
		t.Fatalf("unclaimed read: %v", err)
	}
	tx := client.Tx{Postings: []client.Posting{{Source: "a", Destination: "b", Amount: "1", Asset: "EUR"}}}
	// A batched client sends a differently claimed transfer alone, with
	// its claim: refused; without the claim it is batched and commits.
	if _, err := plain.Transfer(crawler, tx); !errors.Is(err, client.ErrQuotaExceeded) {
		t.Fatalf("crawler transfer: want quota_exceeded, got %v", err)
	}
	if _, err := plain.Transfer(ctx, tx); err != nil {
		t.Fatalf("unclaimed transfer: %v", err)
	}
	// Client-wide claims, overridden per call.
	cc := newClient(t, base, k.Key, client.WithClaims(client.Claims{Traffic: "crawler"}))
	if _, err := cc.Account(ctx, "a"); !errors.Is(err, client.ErrQuotaExceeded) {
		t.Fatalf("client-wide crawler claim: want quota_exceeded, got %v", err)
	}
	if _, err := cc.Account(client.ContextWithClaims(ctx, client.Claims{Traffic: "normal"}), "a"); err != nil {
		t.Fatalf("per-call override to normal: %v", err)
	}
	// Invalid claims: refused locally, nothing sent.
	cnt := newCounter()
	lc := newClient(t, base, k.Key, client.WithHTTPClient(&http.Client{Transport: cnt}))
	bad := client.ContextWithClaims(ctx, client.Claims{Source: "Web\r\nX-Evil: 1"})
	if _, err := lc.Account(bad, "a"); err == nil {
		t.Fatal("invalid claim accepted")
	}
	if _, err := lc.Transfer(bad, tx); err == nil {
		t.Fatal("invalid claim accepted by Transfer")
	}
	if n := cnt.get("GET /v1/accounts/a") + cnt.get("POST /v1/transactions") + cnt.get("POST /v1/transactions/batch"); n != 0 {
		t.Fatalf("%d requests sent with an invalid claim", n)
	}
	if _, err := client.New(base, k.Key, client.WithClaims(client.Claims{Traffic: "BATCH"})); err == nil {
		t.Fatal("New accepted an invalid claim")
	}
}
