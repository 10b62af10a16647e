package ledger_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

// TestJournalBacklogMetrics: an accepted request counts once (its resend
// not again), and an entry the applier cannot apply (here: the pipeline is
// closed) shows as the oldest pending age, measured on the database clock.
func TestJournalBacklogMetrics(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, "INSERT INTO tenants (id) VALUES ('acme')"); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	pipe := ledger.NewPipeline(pool, ledger.PipelineConfig{}, slog.New(slog.DiscardHandler), reg)
	pipe.Close() // every Submit fails: entries stay accepted
	j := ledger.NewJournal(pool, pipe, slog.New(slog.DiscardHandler))
	b, bad := ledger.NewBatch([]ledger.TxInput{transfer("k1", "a", "b", "5")})
	if bad != nil {
		t.Fatal(bad)
	}
	e, _, err := j.Accept(ctx, "acme", b)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.Accept(ctx, "acme", b); err != nil { // the resend
		t.Fatal(err)
	}
	if got := gauge(t, reg, "bulwark_ledger_journal_accepted_total"); got != 1 {
		t.Fatalf("accepted_total %v after one request and its resend, want 1", got)
	}
	if _, err := pool.Exec(ctx, "UPDATE journal SET accepted_at = now() - interval '1 hour' WHERE id = $1", e.ID); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- j.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		age := gauge(t, reg, "bulwark_ledger_journal_oldest_pending_seconds")
		if age >= 3600 && age < 3660 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("oldest pending %v s, want about 3600", age)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gauge reads the value of the unlabelled counter or gauge name from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
