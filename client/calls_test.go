package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
)

// TestAccountsAndReads: account creation (and its idempotent repeat),
// reads, balances as of a time, entry pages.
func TestAccountsAndReads(t *testing.T) {
	base, _, key := setup(t)
	c := newClient(t, base, key)
	ctx := context.Background()
	in := client.AccountInput{ID: "customer:2/wallet", Asset: "EUR", Scale: 2, Metadata: json.RawMessage(`{"owner":"2"}`)}
	a, err := c.CreateAccount(ctx, in)
	if err != nil || a.ID != in.ID || a.Rule != client.RuleNone {
		t.Fatalf("CreateAccount: %+v, %v", a, err)
	}
	if _, err := c.CreateAccount(ctx, in); err != nil {
		t.Fatalf("identical CreateAccount: %v", err)
	}
	in.Scale = 3
	if _, err := c.CreateAccount(ctx, in); !errors.Is(err, client.ErrAccountExists) {
		t.Fatalf("CreateAccount with another scale: %v, want ErrAccountExists", err)
	}
	before := time.Now()
	for i := range 5 {
		if _, err := c.Transfer(ctx, transfer("", "world", "customer:2/wallet", uint64(100+i))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Account(ctx, "customer:2/wallet")
	if err != nil || got.CreditsPosted != "510" || got.Posted != "510" || got.Seq != 5 {
		t.Fatalf("Account: %+v, %v", got, err)
	}
	b, err := c.Balance(ctx, "customer:2/wallet", before.Add(-time.Second))
	if err != nil || b.Seq != 0 || b.CreditsPosted != "0" {
		t.Fatalf("Balance before: %+v, %v", b, err)
	}
	if b, err = c.Balance(ctx, "customer:2/wallet", time.Time{}); err != nil || b.Seq != 5 || b.Posted != "510" {
		t.Fatalf("Balance now: %+v, %v", b, err)
	}
	var seqs []int64
	for after := int64(0); ; {
		p, err := c.Entries(ctx, "customer:2/wallet", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			seqs = append(seqs, e.Seq)
		}
		if p.NextAfterSeq == 0 {
			break
		}
		after = p.NextAfterSeq
	}
	if len(seqs) != 5 || seqs[0] != 1 || seqs[4] != 5 {
		t.Fatalf("entries by pages of 2: seqs %v", seqs)
	}
}

// TestTransactions: single (batched and not), replay, reads by id and
// key, two-phase, explicit batches with a linked group, async.
func TestTransactions(t *testing.T) {
	base, _, key := setup(t)
	c := newClient(t, base, key)
	ctx := context.Background()
	tx, err := c.Transfer(ctx, transfer("fund-1", "world", "customer:1/wallet", 10_000), client.NoBatch())
	if err != nil || tx.Replayed || tx.IdempotencyKey != "fund-1" || tx.State != "posted" {
		t.Fatalf("Transfer: %+v, %v", tx, err)
	}
	again, err := c.Transfer(ctx, transfer("fund-1", "world", "customer:1/wallet", 10_000))
	if err != nil || !again.Replayed || again.ID != tx.ID {
		t.Fatalf("replay: %+v, %v", again, err)
	}
	if got, err := c.TransactionByID(ctx, tx.ID); err != nil || got.IdempotencyKey != "fund-1" {
		t.Fatalf("TransactionByID: %+v, %v", got, err)
	}
	if got, err := c.TransactionByKey(ctx, "fund-1"); err != nil || got.ID != tx.ID {
		t.Fatalf("TransactionByKey: %+v, %v", got, err)
	}
	testTwoPhase(t, c)
	testSubmit(t, c)
	testAsync(t, c)
}

func testTwoPhase(t *testing.T, c *client.Client) {
	ctx := context.Background()
	hold := transfer("hold-1", "customer:1/wallet", "merchant:7", 3000)
	hold.TimeoutSeconds = 3600
	p, err := c.Pending(ctx, hold)
	if err != nil || p.State != "pending" || p.ExpiresAt == nil {
		t.Fatalf("Pending: %+v, %v", p, err)
	}
	posted, err := c.PostPending(ctx, "capture-1", p.ID, "1000")
	if err != nil || posted.Kind != "post_pending" || posted.Postings[0].Amount != "1000" {
		t.Fatalf("PostPending: %+v, %v", posted, err)
	}
	if _, err := c.VoidPending(ctx, "void-1", p.ID); !errors.Is(err, client.ErrPendingAlreadyPosted) {
		t.Fatalf("VoidPending of a posted one: %v, want ErrPendingAlreadyPosted", err)
	}
	p2, err := c.Pending(ctx, transfer("hold-2", "customer:1/wallet", "merchant:7", 500))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.VoidPending(ctx, "void-2", p2.ID, client.NoBatch()); err != nil || v.Kind != "void_pending" {
		t.Fatalf("VoidPending: %+v, %v", v, err)
	}
	w, err := c.Account(ctx, "customer:1/wallet")
	if err != nil || w.DebitsPosted != "1000" || w.DebitsPending != "0" {
		t.Fatalf("wallet after two-phase: %+v, %v", w, err)
	}
}

func testSubmit(t *testing.T, c *client.Client) {
	ctx := context.Background()
	ok1 := transfer("g-ok", "world", "merchant:7", 1)
	ok1.Group = "g"
	bad := transfer("g-bad", "customer:1/wallet", "merchant:7", 1_000_000)
	bad.Group = "g"
	res, err := c.Submit(ctx, []client.Tx{transfer("solo", "world", "merchant:7", 2), ok1, bad, transfer("", "world", "merchant:7", 3)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Transaction.IdempotencyKey != "solo" || res[3].Err != nil {
		t.Fatalf("independent results: %+v %+v", res[0], res[3])
	}
	if !errors.Is(res[1].Err, client.ErrLinkedTransactionFailed) || !errors.Is(res[2].Err, client.ErrInsufficientFunds) {
		t.Fatalf("group results: %v, %v", res[1].Err, res[2].Err)
	}
	var e *client.Error
	if !errors.As(res[2].Err, &e) || e.Status != 422 {
		t.Fatalf("item error %#v: want *Error with status 422", res[2].Err)
	}
	// A grouped Transfer is sent alone, never batched with strangers.
	if _, err := c.Transfer(ctx, ok1); err != nil {
		t.Fatalf("grouped Transfer: %v", err)
	}
	_, err = c.Submit(ctx, []client.Tx{transfer("d", "world", "merchant:7", 1), transfer("d", "world", "merchant:7", 1)})
	if !errors.Is(err, client.ErrDuplicateIdempotencyKey) || !errors.As(err, &e) || e.Index != 1 {
		t.Fatalf("duplicate keys: %v", err)
	}
}

func testAsync(t *testing.T, c *client.Client) {
	ctx := context.Background()
	j, err := c.SubmitAsync(ctx, []client.Tx{transfer("async-1", "world", "merchant:7", 5)})
	if err != nil || j.ID == "" {
		t.Fatalf("SubmitAsync: %+v, %v", j, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for j.State == client.JournalAccepted && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if j, err = c.Journal(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
	}
	if j.State != client.JournalApplied || len(j.Results) != 1 || j.Results[0].Transaction == nil {
		t.Fatalf("journal entry: %+v", j)
	}
	if _, err := c.Journal(ctx, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, client.ErrJournalEntryNotFound) {
		t.Fatalf("unknown journal entry: %v", err)
	}
}

// TestAdmin: tenants, keys, settings, presets.
func TestAdmin(t *testing.T) {
	base := startServer(t)
	admin := newClient(t, base, adminKey)
	ctx := context.Background()
	if _, err := admin.CreateTenant(ctx, "beta", "Beta"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateTenant(ctx, "beta", "Beta"); !errors.Is(err, client.ErrTenantExists) {
		t.Fatalf("second CreateTenant: %v", err)
	}
	if _, err := admin.CreateTenant(ctx, "Bad Id", ""); !errors.Is(err, client.ErrInvalidTenantId) {
		t.Fatalf("bad tenant id: %v", err)
	}
	k, err := admin.CreateKey(ctx, "beta", client.KeyInput{TrafficTypes: []string{"batch"}})
	if err != nil || k.TenantID != "beta" || len(k.Key) != 68 {
		t.Fatalf("CreateKey: %+v, %v", k, err)
	}
	if err := admin.RevokeKey(ctx, "beta", k.ID); err != nil {
		t.Fatal(err)
	}
	if err := admin.RevokeKey(ctx, "beta", k.ID); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatalf("second RevokeKey: %v", err)
	}
	keys, err := admin.SettingKeys(ctx)
	if err != nil || len(keys) == 0 {
		t.Fatalf("SettingKeys: %d, %v", len(keys), err)
	}
	ch, err := admin.ChangeSettings(ctx, "beta", client.SettingsPatch{Set: map[string]any{"priority.weight": 70}, Reason: "test"})
	if err != nil || len(ch.Changes) != 1 {
		t.Fatalf("ChangeSettings: %+v, %v", ch, err)
	}
	if _, err := admin.ChangeSettings(ctx, "beta", client.SettingsPatch{Set: map[string]any{"no.such": 1}}); !errors.Is(err, client.ErrUnknownSetting) {
		t.Fatalf("unknown setting: %v", err)
	}
	s, err := admin.Settings(ctx, "beta")
	if err != nil || s.Version < 1 {
		t.Fatalf("Settings: %+v, %v", s, err)
	}
	found := false
	for _, x := range s.Settings {
		found = found || (x.Key == "priority.weight" && x.Value == "70" && x.Source == "tenant")
	}
	if !found {
		t.Fatalf("priority.weight override not in %+v", s.Settings)
	}
	if _, err := admin.ChangeSettings(ctx, "beta", client.SettingsPatch{Unset: []string{"priority.weight"}}); err != nil {
		t.Fatal(err)
	}
	h, err := admin.SettingHistory(ctx, client.HistoryQuery{Tenant: "beta", Limit: 10})
	if err != nil || len(h) != 2 || h[0].NewValue != nil || h[1].Reason != "test" {
		t.Fatalf("SettingHistory: %+v, %v", h, err)
	}
	testPresets(t, admin)
}

func testPresets(t *testing.T, admin *client.Client) {
	ctx := context.Background()
	ps, err := admin.Presets(ctx)
	if err != nil || len(ps) == 0 {
		t.Fatalf("Presets: %+v, %v", ps, err)
	}
	name := ps[0].Name
	r := client.PresetRequest{Tenant: "beta", Reason: "drill", Operator: "test"}
	if _, err := admin.ApplyPreset(ctx, name, r); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApplyPreset(ctx, name, r); !errors.Is(err, client.ErrPresetAlreadyApplied) {
		t.Fatalf("second apply: %v", err)
	}
	if _, err := admin.RevertPreset(ctx, name, r); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevertPreset(ctx, name, r); !errors.Is(err, client.ErrPresetNotApplied) {
		t.Fatalf("second revert: %v", err)
	}
	if _, err := admin.ApplyPreset(ctx, "no-such-preset", r); !errors.Is(err, client.ErrPresetNotFound) {
		t.Fatalf("unknown preset: %v", err)
	}
}
