package ledger_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
)

// TestJournalApplierSurvivesUndecodableRows: accepted journal rows that
// cannot be decoded (older at that, so they are claimed first) are
// finished as rejected with a reason, the entries behind them are applied,
// and Run returns only after its submissions are done.
func TestJournalApplierSurvivesUndecodableRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "acme")
	f.account(t, "acme", "a", "")
	f.account(t, "acme", "b", "")
	ctx := context.Background()
	for i, body := range []string{`{"transactions":"not a list"}`, `[1,2,3]`, `{"transactions":[{"idempotency_key":7}]}`} {
		if _, err := f.pool.Exec(ctx, `INSERT INTO journal (tenant_id, id, idempotency_key, request_digest, request, state, accepted_at)
			VALUES ('acme', $1, $2, '\x00', $3, 'accepted', now() - interval '1 hour')`,
			ledger.NewID(), "bad"+string(rune('0'+i)), body); err != nil {
			t.Fatal(err)
		}
	}
	j := ledger.NewJournal(f.pool, f.pipe, slog.New(slog.DiscardHandler))
	in := []ledger.TxInput{transfer("good", "a", "b", "5")}
	b, bad := ledger.NewBatch(in)
	if bad != nil {
		t.Fatal(bad)
	}
	e, _, err := j.Accept(ctx, "acme", b)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- j.Run(runCtx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := j.Status(ctx, "acme", e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == "applied" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the good entry is still %s behind undecodable rows", st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var rejected int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM journal WHERE idempotency_key LIKE 'bad%'
		AND state = 'rejected' AND outcome::text LIKE '%malformed_json%' AND finished_at IS NOT NULL`).Scan(&rejected); err != nil {
		t.Fatal(err)
	}
	if rejected != 3 {
		t.Fatalf("%d of 3 undecodable rows rejected with a reason", rejected)
	}
}
