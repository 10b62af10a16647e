package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/amount"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/ledger/verify"
)

func mustVerify(t *testing.T, f *fixture) {
	t.Helper()
	rep, err := verify.Run(context.Background(), f.pool)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("invariants: %s", rep)
	}
}

func balances(t *testing.T, f *fixture, tenant, id string) ledger.Account {
	t.Helper()
	a, err := f.store.Account(context.Background(), tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPendingPostInPartReleasesTheRest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "acme")
	f.account(t, "acme", "world", "none")
	f.account(t, "acme", "bob", ledger.RuleDebitsMustNotExceedCredits)
	f.account(t, "acme", "shop", "none")
	f.submit(t, "acme", transfer("fund", "world", "bob", "1000"))
	hold := transfer("hold", "bob", "shop", "800")
	hold.Type, hold.TimeoutSeconds = ledger.KindPending, 3600
	res := f.submit(t, "acme", hold)
	if code(res[0]) != "ok" {
		t.Fatalf("hold: %s", code(res[0]))
	}
	pid := res[0].Transaction.ID
	// Reserved funds are not available: a transfer of 300 must fail.
	if r := f.submit(t, "acme", transfer("spend", "bob", "world", "300")); code(r[0]) != ledger.CodeInsufficientFunds {
		t.Fatalf("spend during hold: %s, want insufficient_funds", code(r[0]))
	}
	if a := balances(t, f, "acme", "bob"); a.Available != "200" || a.DebitsPending.String() != "800" {
		t.Fatalf("bob available=%s pending=%s, want 200 and 800", a.Available, a.DebitsPending)
	}
	part := amount.FromUint64(500)
	over := amount.FromUint64(801)
	r := f.submit(t, "acme",
		ledger.TxInput{IdempotencyKey: "over", Type: ledger.KindPostPending, PendingID: pid, Amount: &over},
		ledger.TxInput{IdempotencyKey: "post", Type: ledger.KindPostPending, PendingID: pid, Amount: &part},
		ledger.TxInput{IdempotencyKey: "void", Type: ledger.KindVoidPending, PendingID: pid})
	if code(r[0]) != ledger.CodePostExceedsPending || code(r[1]) != "ok" || code(r[2]) != ledger.CodePendingPosted {
		t.Fatalf("results %s %s %s", code(r[0]), code(r[1]), code(r[2]))
	}
	a := balances(t, f, "acme", "bob")
	if a.Posted != "500" || !a.DebitsPending.IsZero() || a.Available != "500" {
		t.Fatalf("bob after post: posted=%s pending=%s available=%s", a.Posted, a.DebitsPending, a.Available)
	}
	tx, err := f.store.Transaction(context.Background(), "acme", pid, false)
	if err != nil || tx.State != ledger.StatePosted {
		t.Fatalf("pending state = %q (%v), want posted", tx.State, err)
	}
	mustVerify(t, f)
}

func TestVoidThenPostIsRejected(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "acme")
	f.account(t, "acme", "a", "none")
	f.account(t, "acme", "b", "none")
	hold := transfer("h", "a", "b", "10")
	hold.Type = ledger.KindPending
	pid := f.submit(t, "acme", hold)[0].Transaction.ID
	if r := f.submit(t, "acme", ledger.TxInput{IdempotencyKey: "v", Type: ledger.KindVoidPending, PendingID: pid}); code(r[0]) != "ok" {
		t.Fatalf("void: %s", code(r[0]))
	}
	r := f.submit(t, "acme", ledger.TxInput{IdempotencyKey: "p", Type: ledger.KindPostPending, PendingID: pid})
	if code(r[0]) != ledger.CodePendingVoided {
		t.Fatalf("post after void: %s, want pending_already_voided", code(r[0]))
	}
	if _, err := f.store.Transaction(context.Background(), "acme", "p", true); err == nil {
		t.Fatal("rejected post was written")
	}
	if a := balances(t, f, "acme", "a"); !a.DebitsPending.IsZero() || !a.DebitsPosted.IsZero() {
		t.Fatalf("a after void: %+v", a)
	}
	mustVerify(t, f)
}

func TestPendingExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "acme")
	f.account(t, "acme", "a", "none")
	f.account(t, "acme", "b", "none")
	hold := transfer("h", "a", "b", "10")
	hold.Type, hold.TimeoutSeconds = ledger.KindPending, 1
	pid := f.submit(t, "acme", hold)[0].Transaction.ID
	exp := ledger.NewExpirer(f.pool, f.pipe, nil, 0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := exp.ExpireOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pending transaction never expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := f.submit(t, "acme", ledger.TxInput{IdempotencyKey: "p", Type: ledger.KindPostPending, PendingID: pid})
	if code(r[0]) != ledger.CodePendingExpired {
		t.Fatalf("post after expiry: %s, want pending_expired", code(r[0]))
	}
	if n, _ := exp.ExpireOnce(context.Background()); n != 0 {
		t.Fatalf("expired %d again", n)
	}
	mustVerify(t, f)
}

func TestGroupCommitsOrFailsTogether(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "acme")
	f.account(t, "acme", "world", "none")
	f.account(t, "acme", "alice", ledger.RuleDebitsMustNotExceedCredits)
	a := transfer("g1", "world", "alice", "100")
	b := transfer("g2", "alice", "world", "150") // fails: alice would hold -50
	a.Group, b.Group = "g", "g"
	c := transfer("solo", "world", "alice", "7")
	r := f.submit(t, "acme", a, c, b)
	if code(r[0]) != ledger.CodeLinkedFailed || code(r[1]) != "ok" || code(r[2]) != ledger.CodeInsufficientFunds {
		t.Fatalf("results %s %s %s", code(r[0]), code(r[1]), code(r[2]))
	}
	if acc := balances(t, f, "acme", "alice"); acc.Posted != "7" || acc.Seq != 1 {
		t.Fatalf("alice posted=%s seq=%d, want 7 and 1 (group rolled back)", acc.Posted, acc.Seq)
	}
	mustVerify(t, f)
}

func TestIdempotencyAcrossAndWithinBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "acme", "other")
	f.account(t, "acme", "a", "none")
	f.account(t, "acme", "b", "none")
	f.account(t, "other", "a", "none")
	f.account(t, "other", "b", "none")
	first := f.submit(t, "acme", transfer("k", "a", "b", "5"))[0]
	again := f.submit(t, "acme", transfer("k", "a", "b", "5"))[0]
	if !again.Replayed || again.Transaction.ID != first.Transaction.ID {
		t.Fatalf("replay = %+v, want the first transaction %s", again, first.Transaction.ID)
	}
	if r := f.submit(t, "acme", transfer("k", "a", "b", "6"))[0]; code(r) != ledger.CodeIdempotencyConflict {
		t.Fatalf("different body: %s, want idempotency_conflict", code(r))
	}
	// Keys are per tenant: the same key in another tenant is a new transaction.
	if r := f.submit(t, "other", transfer("k", "a", "b", "6"))[0]; code(r) != "ok" || r.Replayed {
		t.Fatalf("other tenant: %s replayed=%v", code(r), r.Replayed)
	}
	// Concurrent submissions of one key commit it once.
	done := make(chan ledger.Result, 8)
	for range 8 {
		go func() {
			res, err := f.pipe.Submit(context.Background(), "acme", mustBatch(t, transfer("race", "a", "b", "1")))
			if err != nil {
				t.Error(err)
			}
			done <- res[0]
		}()
	}
	ids := map[string]int{}
	for range 8 {
		r := <-done
		if r.Err != nil {
			t.Fatalf("race: %s", r.Err)
		}
		ids[r.Transaction.ID]++
	}
	if len(ids) != 1 {
		t.Fatalf("one key committed as %d transactions", len(ids))
	}
	if acc := balances(t, f, "acme", "b"); acc.Posted != "6" {
		t.Fatalf("b posted = %s, want 6 (5 + one race transfer)", acc.Posted)
	}
	mustVerify(t, f)
}

func TestRejectionsWriteNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "acme")
	f.account(t, "acme", "a", "none")
	f.account(t, "acme", "b", "none")
	if _, _, err := f.store.CreateAccount(context.Background(), "acme", ledger.AccountInput{ID: "eur", Asset: "EUR", Rule: "none", Metadata: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	max := amount.Max()
	cases := []struct {
		tx   ledger.TxInput
		want string
	}{
		{transfer("u1", "a", "nobody", "1"), ledger.CodeAccountNotFound},
		{transfer("u2", "a", "eur", "1"), ledger.CodeAssetMismatch},
		{ledger.TxInput{IdempotencyKey: "u3", Type: ledger.KindPostPending, PendingID: ledger.NewID()}, ledger.CodePendingNotFound},
		{ledger.TxInput{IdempotencyKey: "u4", Postings: []ledger.Posting{
			{Source: "a", Destination: "b", Amount: max, Asset: "USD"},
			{Source: "a", Destination: "b", Amount: max, Asset: "USD"}}}, ledger.CodeOverflow},
	}
	for _, c := range cases {
		if r := f.submit(t, "acme", c.tx)[0]; code(r) != c.want {
			t.Errorf("%s: %s, want %s", c.tx.IdempotencyKey, code(r), c.want)
		}
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM transactions) + (SELECT count(*) FROM entries)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows written by rejected transactions", n)
	}
	if a := balances(t, f, "acme", "a"); a.Seq != 0 {
		t.Fatalf("a seq = %d after rejections", a.Seq)
	}
}
