package ledger_test

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/amount"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

func TestMain(m *testing.M) {
	// The archive crash test re-executes this binary as the archiver it
	// kills (see archiveHelperMain).
	if os.Getenv(archiveHelperEnv) != "" {
		os.Exit(archiveHelperMain())
	}
	os.Exit(pgtest.Main(m))
}

type fixture struct {
	pool  *pgxpool.Pool
	store *ledger.Store
	pipe  *ledger.Pipeline
}

func newFixture(t *testing.T, tenants ...string) *fixture {
	t.Helper()
	pool := pgtest.Pool(t)
	for _, tn := range tenants {
		if _, err := pool.Exec(context.Background(), "INSERT INTO tenants (id) VALUES ($1)", tn); err != nil {
			t.Fatal(err)
		}
	}
	pipe := ledger.NewPipeline(pool, ledger.PipelineConfig{}, slog.New(slog.DiscardHandler), nil)
	t.Cleanup(pipe.Close)
	return &fixture{pool: pool, store: ledger.NewStore(pool), pipe: pipe}
}

func (f *fixture) account(t *testing.T, tenant, id, rule string) {
	t.Helper()
	in := ledger.AccountInput{ID: id, Asset: "USD", Scale: 2, Rule: rule}
	if err := ledger.ValidateAccount(&in); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.store.CreateAccount(context.Background(), tenant, in); err != nil {
		t.Fatal(err)
	}
}

func amt(s string) amount.Uint128 {
	a, err := amount.Parse(s)
	if err != nil {
		panic(err)
	}
	return a
}

func transfer(key, src, dst, a string) ledger.TxInput {
	return ledger.TxInput{IdempotencyKey: key, Postings: []ledger.Posting{{Source: src, Destination: dst, Amount: amt(a), Asset: "USD"}}}
}

func (f *fixture) submit(t *testing.T, tenant string, txs ...ledger.TxInput) []ledger.Result {
	t.Helper()
	b, bad := ledger.NewBatch(txs)
	if bad != nil {
		t.Fatalf("validate: %v", bad)
	}
	res, err := f.pipe.Submit(context.Background(), tenant, b)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return res
}

// mustBatch validates txs into a Batch. A failure fails the test; it may be
// called from any goroutine (the zero Batch it then returns is refused by
// Submit).
func mustBatch(tb testing.TB, txs ...ledger.TxInput) ledger.Batch {
	tb.Helper()
	b, err := ledger.NewBatch(txs)
	if err != nil {
		tb.Errorf("validate: %v", err)
	}
	return b
}

func code(r ledger.Result) string {
	if r.Err == nil {
		return "ok"
	}
	return r.Err.Code
}

func TestTransferMovesBalances(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "acme")
	f.account(t, "acme", "world", "none")
	f.account(t, "acme", "alice", ledger.RuleDebitsMustNotExceedCredits)
	res := f.submit(t, "acme", transfer("k1", "world", "alice", "1500"), transfer("k2", "alice", "world", "2000"))
	if code(res[0]) != "ok" || code(res[1]) != ledger.CodeInsufficientFunds {
		t.Fatalf("results = %s, %s; want ok, insufficient_funds", code(res[0]), code(res[1]))
	}
	a, err := f.store.Account(context.Background(), "acme", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if a.Posted != "1500" || a.Seq != 1 {
		t.Fatalf("alice posted=%s seq=%d, want 1500 and 1", a.Posted, a.Seq)
	}
	w, _ := f.store.Account(context.Background(), "acme", "world")
	if w.Posted != "-1500" {
		t.Fatalf("world posted = %s, want -1500", w.Posted)
	}
}

// TestAmountsBeyondInt64 commits amounts past 2^63 (an 18-decimal asset
// holds them at ~9.2 units), mixed in one batch with small ones, and reads
// them back exactly.
func TestAmountsBeyondInt64(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "acme")
	f.account(t, "acme", "world", "none")
	f.account(t, "acme", "whale", "none")
	f.account(t, "acme", "minnow", "none")
	big := "170141183460469231731687303715884105727" // 2^127 - 1
	res := f.submit(t, "acme", transfer("big", "world", "whale", big), transfer("small", "world", "minnow", "1"))
	if code(res[0]) != "ok" || code(res[1]) != "ok" {
		t.Fatalf("results %s %s", code(res[0]), code(res[1]))
	}
	if a := balances(t, f, "acme", "whale"); a.Posted != big {
		t.Fatalf("whale posted = %s, want %s", a.Posted, big)
	}
	if a := balances(t, f, "acme", "world"); a.Posted != "-170141183460469231731687303715884105728" {
		t.Fatalf("world posted = %s", a.Posted)
	}
	es, err := f.store.Entries(context.Background(), "acme", "whale", 0, 10)
	if err != nil || len(es) != 1 || es[0].Amount.String() != big || es[0].CreditsPosted.String() != big {
		t.Fatalf("whale entries %+v (%v)", es, err)
	}
	mustVerify(t, f)
}
