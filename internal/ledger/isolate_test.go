package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/amount"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

// TestUnstorableRequestFailsAlone: requests that PostgreSQL refuses at
// commit (NUL in a key, a lone surrogate in metadata: validation would
// refuse them, SubmitUnchecked lets them through) share commit batches
// with other tenants' transfers. Each bad request fails alone with
// unstorable_value and writes nothing; every neighbour commits.
func TestUnstorableRequestFailsAlone(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := context.Background()
	for _, tn := range []string{"evil", "good"} {
		if _, err := pool.Exec(ctx, "INSERT INTO tenants (id) VALUES ($1)", tn); err != nil {
			t.Fatal(err)
		}
	}
	// A long window gathers every concurrent request into few batches.
	pipe := ledger.NewPipeline(pool, ledger.PipelineConfig{BatchWindow: 20 * time.Millisecond}, slog.New(slog.DiscardHandler), nil)
	defer pipe.Close()
	store := ledger.NewStore(pool)
	for _, tn := range []string{"evil", "good"} {
		for _, id := range []string{"a", "b"} {
			in := ledger.AccountInput{ID: id, Asset: "USD"}
			if err := ledger.ValidateAccount(&in); err != nil {
				t.Fatal(err)
			}
			if _, _, err := store.CreateAccount(ctx, tn, in); err != nil {
				t.Fatal(err)
			}
		}
	}
	tx := func(key, meta string) ledger.TxInput {
		return ledger.TxInput{IdempotencyKey: key, Type: ledger.KindPosted, Metadata: json.RawMessage(meta),
			Postings: []ledger.Posting{{Source: "a", Destination: "b", Amount: amount.FromUint64(1), Asset: "USD"}}}
	}
	const good, bad = 60, 6
	var wg sync.WaitGroup
	errs := make(chan error, good+bad)
	for i := range good {
		wg.Go(func() {
			res, err := pipe.Submit(ctx, "good", mustBatch(t, tx(fmt.Sprintf("g%d", i), `{}`)))
			if err != nil || res[0].Err != nil || res[0].Transaction == nil {
				errs <- fmt.Errorf("good %d: %w %+v", i, err, res)
			}
		})
	}
	for i := range bad {
		wg.Go(func() {
			in := tx(fmt.Sprintf("e%d\x00", i), `{}`)
			if i%2 == 1 {
				in = tx(fmt.Sprintf("e%d", i), `{"a":"\ud800"}`)
			}
			_, err := pipe.SubmitUnchecked(ctx, "evil", []ledger.TxInput{in})
			var le *ledger.Error
			if !errors.As(err, &le) || le.Code != ledger.CodeUnstorable || le.Status() != 400 {
				errs <- fmt.Errorf("bad %d: %w, want %s", i, err, ledger.CodeUnstorable)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var goodTx, evilTx int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE tenant_id = 'good'), count(*) FILTER (WHERE tenant_id = 'evil')
		FROM transactions`).Scan(&goodTx, &evilTx); err != nil {
		t.Fatal(err)
	}
	if goodTx != good || evilTx != 0 {
		t.Fatalf("committed %d good (want %d) and %d bad (want 0) transactions", goodTx, good, evilTx)
	}
}
