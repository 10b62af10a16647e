package client_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/bulwark-ledger/bulwark/client"
)

// TestTypedErrors provokes problem codes through the server (and the
// local checks) and matches each with its sentinel.
func TestTypedErrors(t *testing.T) {
	base, admin, key := setup(t)
	cnt := newCounter()
	c := newClient(t, base, key, client.WithHTTPClient(&http.Client{Transport: cnt}))
	ctx := context.Background()
	if _, err := c.Transfer(ctx, transfer("k1", "world", "customer:1/wallet", 100)); err != nil {
		t.Fatal(err)
	}
	anon := newClient(t, base, "bwk_0000000000000000000000000000000000000000000000000000000000000000")
	badAmount := transfer("x", "world", "merchant:7", 1)
	badAmount.Postings[0].Amount = "01"
	zero := transfer("x", "world", "merchant:7", 1)
	zero.Postings[0].Amount = "0"
	for _, tc := range []struct {
		name   string
		err    func() error
		want   error
		status int
	}{
		{"insufficient funds", func() error {
			_, err := c.Transfer(ctx, transfer("k2", "customer:1/wallet", "merchant:7", 101))
			return err
		}, client.ErrInsufficientFunds, 422},
		{"idempotency conflict", func() error {
			_, err := c.Transfer(ctx, transfer("k1", "world", "customer:1/wallet", 999), client.NoBatch())
			return err
		}, client.ErrIdempotencyConflict, 409},
		{"idempotency conflict, batched", func() error {
			_, err := c.Transfer(ctx, transfer("k1", "world", "customer:1/wallet", 998))
			return err
		}, client.ErrIdempotencyConflict, 409},
		{"account not found", func() error { _, err := c.Account(ctx, "nobody"); return err }, client.ErrAccountNotFound, 404},
		{"account not found in a transfer", func() error {
			_, err := c.Transfer(ctx, transfer("k3", "world", "nobody", 1))
			return err
		}, client.ErrAccountNotFound, 404},
		{"transaction not found", func() error { _, err := c.TransactionByKey(ctx, "nope"); return err }, client.ErrTransactionNotFound, 404},
		{"asset mismatch", func() error {
			tx := transfer("k4", "world", "merchant:7", 1)
			tx.Postings[0].Asset = "USD"
			_, err := c.Transfer(ctx, tx)
			return err
		}, client.ErrAssetMismatch, 422},
		{"pending not found", func() error {
			_, err := c.VoidPending(ctx, "k5", "00000000-0000-0000-0000-000000000000")
			return err
		}, client.ErrPendingNotFound, 404},
		{"unauthenticated", func() error { _, err := anon.Account(ctx, "world"); return err }, client.ErrUnauthenticated, 401},
		{"tenant key required", func() error { _, err := admin.Account(ctx, "world"); return err }, client.ErrTenantKeyRequired, 403},
		{"admin key required", func() error { _, err := c.Presets(ctx); return err }, client.ErrAdminKeyRequired, 403},
		{"invalid amount (local)", func() error { _, err := c.Transfer(ctx, badAmount); return err }, client.ErrInvalidAmount, 400},
		{"zero amount (local)", func() error { _, err := c.Transfer(ctx, zero); return err }, client.ErrInvalidAmount, 400},
		{"invalid account (local)", func() error {
			_, err := c.Transfer(ctx, transfer("x", "world", "world", 1))
			return err
		}, client.ErrInvalidAccount, 400},
		{"bad metadata (local)", func() error {
			tx := transfer("x", "world", "merchant:7", 1)
			tx.Metadata = []byte(`{"a":`)
			_, err := c.Transfer(ctx, tx)
			return err
		}, client.ErrMalformedJSON, 400},
		{"bad account id (local)", func() error { _, err := c.Account(ctx, "a b"); return err }, client.ErrInvalidAccount, 400},
	} {
		err := tc.err()
		var e *client.Error
		if !errors.Is(err, tc.want) || !errors.As(err, &e) || e.Status != tc.status {
			t.Errorf("%s: %v (%#v), want %v with status %d", tc.name, err, err, tc.want, tc.status)
		}
		if errors.Is(err, client.ErrInternal) {
			t.Errorf("%s: matches an unrelated sentinel", tc.name)
		}
	}
	// The local rejections never reached the server: the funding transfer
	// and the 6 transfers the server rejected are all that did.
	if n := cnt.get("POST /v1/transactions") + cnt.get("POST /v1/transactions/batch"); n != 7 {
		t.Errorf("%d transaction requests reached the server, want 7", n)
	}
}
