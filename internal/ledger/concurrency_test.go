package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/amount"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

// seed returns BULWARK_SEED or a fresh seed, and logs it so a failure replays.
func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("BULWARK_SEED"); v != "" {
		s, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (replay with BULWARK_SEED=%d)", s, s)
	return s
}

// TestRandomizedConcurrency drives three independent pipelines (one naive) ("processes",
// each with its own pool) on one database with many goroutines: a hot
// account and uniform ones, rule-limited accounts, pending/post/void and
// idempotent retries. Afterwards every invariant must hold and every
// acknowledged transaction must exist exactly once.
func TestRandomizedConcurrency(t *testing.T) {
	t.Parallel()
	s := seed(t)
	url := pgtest.NewDB(t)
	ctx := context.Background()
	var pipes []*ledger.Pipeline
	var pools []*pgxpool.Pool
	for i := range 3 {
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		pools = append(pools, pool)
		// Different batch shapes per process widen the interleavings.
		// The third is the naive baseline, which must be just as correct.
		cfg := ledger.PipelineConfig{MaxBatchTransactions: 64 << i, Committers: 1 + i, Naive: i == 2}
		p := ledger.NewPipeline(pool, cfg, slog.New(slog.DiscardHandler), nil)
		t.Cleanup(p.Close)
		pipes = append(pipes, p)
	}
	f := &fixture{pool: pools[0], store: ledger.NewStore(pools[0]), pipe: pipes[0]}
	for _, tn := range []string{"t1", "t2"} {
		if _, err := f.pool.Exec(ctx, "INSERT INTO tenants (id) VALUES ($1)", tn); err != nil {
			t.Fatal(err)
		}
		f.account(t, tn, "world", "none")
		f.account(t, tn, "hot", "none")
		for i := range 20 {
			rule := "none"
			if i%2 == 0 {
				rule = ledger.RuleDebitsMustNotExceedCredits
			}
			f.account(t, tn, fmt.Sprintf("u%d", i), rule)
		}
	}
	const workers, opsPerWorker = 16, 60
	var mu sync.Mutex
	acked := map[string]string{} // tenant/key -> transaction id
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(s, uint64(w)))
			tn := []string{"t1", "t2"}[w%2]
			var pendings []string
			for op := range opsPerWorker {
				tx := randomTx(rng, w, op, &pendings)
				pipe := pipes[rng.IntN(len(pipes))]
				res, err := pipe.Submit(ctx, tn, mustBatch(t, tx))
				if err != nil {
					t.Errorf("submit: %v", err)
					return
				}
				if res[0].Err != nil {
					continue
				}
				if tx.Type == ledger.KindPending {
					pendings = append(pendings, res[0].Transaction.ID)
				}
				mu.Lock()
				if prev, ok := acked[tn+"/"+tx.IdempotencyKey]; ok && prev != res[0].Transaction.ID {
					t.Errorf("key %s answered with two ids %s and %s", tx.IdempotencyKey, prev, res[0].Transaction.ID)
				}
				acked[tn+"/"+tx.IdempotencyKey] = res[0].Transaction.ID
				mu.Unlock()
				// Retry a fraction on the other process: must replay.
				if rng.IntN(4) == 0 {
					again, err := pipes[rng.IntN(len(pipes))].Submit(ctx, tn, mustBatch(t, tx))
					if err != nil || again[0].Err != nil || again[0].Transaction.ID != res[0].Transaction.ID {
						t.Errorf("retry of %s: %v %+v", tx.IdempotencyKey, err, again)
					}
				}
			}
		}()
	}
	wg.Wait()
	mustVerify(t, f)
	var n int
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM transactions").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(acked) {
		t.Fatalf("%d transactions stored, %d acknowledged", n, len(acked))
	}
	t.Logf("%d transactions acknowledged and stored once each", n)
}

func randomTx(rng *rand.Rand, w, op int, pendings *[]string) ledger.TxInput {
	key := fmt.Sprintf("w%d-op%d", w, op)
	acct := func() string {
		switch rng.IntN(3) {
		case 0:
			return "hot"
		case 1:
			return "world"
		}
		return fmt.Sprintf("u%d", rng.IntN(20))
	}
	switch r := rng.IntN(10); {
	case r < 2 && len(*pendings) > 0:
		i := rng.IntN(len(*pendings))
		pid := (*pendings)[i]
		*pendings = append((*pendings)[:i], (*pendings)[i+1:]...)
		if rng.IntN(2) == 0 {
			return ledger.TxInput{IdempotencyKey: key, Type: ledger.KindVoidPending, PendingID: pid}
		}
		return ledger.TxInput{IdempotencyKey: key, Type: ledger.KindPostPending, PendingID: pid}
	default:
		src, dst := acct(), acct()
		for dst == src {
			dst = acct()
		}
		tx := ledger.TxInput{IdempotencyKey: key, Postings: []ledger.Posting{
			{Source: src, Destination: dst, Amount: amount.FromUint64(uint64(1 + rng.IntN(100))), Asset: "USD"}}}
		if rng.IntN(5) == 0 {
			tx.Type = ledger.KindPending
		}
		return tx
	}
}
