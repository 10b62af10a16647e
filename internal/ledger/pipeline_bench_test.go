package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

// BenchmarkPipelineHot measures the commit pipeline without HTTP: every
// transfer touches one hot account, 32 submitters. Compare with
// BenchmarkNaiveHot (same code, one database transaction per transfer).
func BenchmarkPipelineHot(b *testing.B) {
	for _, c := range []struct {
		name string
		cfg  ledger.PipelineConfig
	}{
		{"default", ledger.PipelineConfig{}},
		{"nowait", ledger.PipelineConfig{BatchWindow: -1}},
		{"nowait-4committers", ledger.PipelineConfig{BatchWindow: -1, Committers: 4}},
		{"1committer", ledger.PipelineConfig{Committers: 1}},
	} {
		b.Run(c.name, func(b *testing.B) { benchHot(b, c.cfg) })
	}
}

// BenchmarkNaiveHot is the per-transfer baseline.
func BenchmarkNaiveHot(b *testing.B) { benchHot(b, ledger.PipelineConfig{Naive: true}) }

func benchHot(b *testing.B, cfg ledger.PipelineConfig) {
	ctx := context.Background()
	pcfg, err := pgxpool.ParseConfig(pgtest.NewDB(b))
	if err != nil {
		b.Fatal(err)
	}
	pcfg.MaxConns = 40
	pcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan" // as server.Run does
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "INSERT INTO tenants (id) VALUES ('t')"); err != nil {
		b.Fatal(err)
	}
	store := ledger.NewStore(pool)
	for i := range 101 {
		id := fmt.Sprint("u", i)
		if i == 100 {
			id = "hot"
		}
		if _, _, err := store.CreateAccount(ctx, "t", ledger.AccountInput{ID: id, Asset: "USD", Rule: "none", Metadata: []byte("{}")}); err != nil {
			b.Fatal(err)
		}
	}
	pipe := ledger.NewPipeline(pool, cfg, slog.New(slog.DiscardHandler), nil)
	defer pipe.Close()
	var n atomic.Int64
	b.SetParallelism(16) // 32 submitters on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			tx := transfer(fmt.Sprint(b.N, "-", i), fmt.Sprint("u", i%100), "hot", "1")
			if _, err := pipe.Submit(ctx, "t", mustBatch(b, tx)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transfers/s")
}
