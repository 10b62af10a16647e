// Package exportbench measures exports on this machine (`bulwark bench
// export`): the rows per second of one export (CSV and JSONL) against
// COPY (SELECT …) TO STDOUT of the same rows on the same server, the
// physical bound; the peak RSS of the process during the CSV export; and
// isolation: the p99 latency of small exports and of single-transfer
// ledger writes alone, while 4 huge exports run, and while they run with
// isolation switched off (one shared queue and worker pool). It is a
// program, not a test: it reports figures and ratios measured in the same
// run and never fails because the machine is slow.
//
// The ledger is seeded in SQL (exporttest.Seed): millions of entries in
// seconds, with balances consistent per account, which is all an export
// reads.
package exportbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/export"
	"github.com/bulwark-ledger/bulwark/internal/export/exporttest"
	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
	"github.com/bulwark-ledger/bulwark/internal/schema"
)

// Config of a run.
type Config struct {
	// PostgresURL is an empty database the run may fill. Required.
	PostgresURL string
	// Dir holds the export files. Required.
	Dir string
	// Rows is the entries of the big tenant. Zero means 2,000,000.
	Rows int
	// Duration is the measured window of each isolation mode. Zero means 10 s.
	Duration time.Duration
	// HugeRate is tasks.export_huge.rate_per_partition of the big tenant
	// during the isolation phase, in chunks of 10,000 rows per second. The
	// 4 huge exports all belong to that tenant (seeding 4 tenants would
	// take 4 times as long), so zero means 4: what 4 tenants' huge exports
	// take at the setting's default of 1.
	HugeRate float64
	Log      *slog.Logger
}

func (c *Config) ensureDefaults() error {
	if c.PostgresURL == "" || c.Dir == "" {
		return errors.New("exportbench: PostgresURL and Dir are required")
	}
	if c.Rows == 0 {
		c.Rows = 2_000_000
	}
	if c.Rows < 20_000 {
		return fmt.Errorf("exportbench: --rows %d: at least 20,000", c.Rows)
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.HugeRate == 0 {
		c.HugeRate = 4
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Tenants of the run.
const (
	bigTenant    = "big"    // Rows entries
	smallTenant  = "small"  // 1,000 entries: the small export
	writerTenant = "writer" // two accounts for the ledger writes
)

// bench is one run's shared parts.
type bench struct {
	cfg     Config
	pool    *pgxpool.Pool
	watcher *control.Watcher
	cstore  *control.Store
	rep     *Report
}

// Run runs the benchmark, printing progress and the table to out.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(cfg.PostgresURL)
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := schema.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, pool: pool, rep: &Report{Rows: cfg.Rows}}
	if err := b.seed(ctx, out); err != nil {
		return nil, err
	}
	wctx, stopWatcher := context.WithCancel(ctx)
	defer stopWatcher()
	reg := control.NewRegistry()
	b.watcher = control.NewWatcher(pool, reg, cfg.Log, nil, control.WithPollInterval(100*time.Millisecond))
	if err := b.watcher.Sync(ctx); err != nil {
		return nil, err
	}
	go func() { _ = b.watcher.Run(wctx) }() // ends with wctx, before pool.Close
	b.cstore = control.NewStore(pool, reg)
	if err := b.throughput(ctx, out); err != nil {
		return nil, err
	}
	for _, mode := range []string{ModeAlone, ModeWithHuge, ModeShared} {
		if err := b.isolation(ctx, mode, out); err != nil {
			return nil, fmt.Errorf("isolation %s: %w", mode, err)
		}
	}
	b.rep.print(out)
	return b.rep, nil
}

func (b *bench) seed(ctx context.Context, out io.Writer) error {
	start := time.Now()
	if err := exporttest.Seed(ctx, b.pool, bigTenant, 1000, b.cfg.Rows/2); err != nil {
		return err
	}
	if err := exporttest.Seed(ctx, b.pool, smallTenant, 10, 500); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO tenants (id) VALUES ($1)`, writerTenant); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO accounts (tenant_id, id, asset, scale, rule)
		VALUES ($1, 'w1', 'USD', 2, 'none'), ($1, 'w2', 'USD', 2, 'none')`, writerTenant); err != nil {
		return err
	}
	fmt.Fprintf(out, "seeded %d entries in %.1f s\n", b.cfg.Rows, time.Since(start).Seconds())
	return nil
}

// set changes settings of tenant and waits until the watcher has them.
func (b *bench) set(ctx context.Context, tenant string, kv ...string) error {
	var ch []control.Change
	for i := 0; i+1 < len(kv); i += 2 {
		ch = append(ch, control.Change{Key: kv[i], Value: kv[i+1]})
	}
	res, err := b.cstore.Apply(ctx, tenant, ch, control.Actor{KeyID: "admin", Reason: "bench export"})
	if err != nil {
		return err
	}
	for b.watcher.Version() < res.Version {
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// runner starts export workers polling every poll when idle; stop ends
// them and closes their pools.
func (b *bench) runner(ctx context.Context, normal, huge int, poll time.Duration) (stop func(), err error) {
	np, err := export.OpenPool(ctx, b.cfg.PostgresURL, int32(2*normal+2), 60*time.Second)
	if err != nil {
		return nil, err
	}
	hp, err := export.OpenPool(ctx, b.cfg.PostgresURL, int32(2*huge+1), 60*time.Second)
	if err != nil {
		np.Close()
		return nil, err
	}
	lim := ratelimit.New(ratelimit.FromControl(b.watcher, control.TaskExportHuge))
	r, err := export.NewRunner(export.Config{Dir: b.cfg.Dir, WorkerID: "bench", NormalWorkers: normal, HugeWorkers: huge,
		Poll: poll}, np, hp, b.watcher, lim, b.cfg.Log, prometheus.NewRegistry())
	if err != nil {
		np.Close()
		hp.Close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(rctx) }()
	return func() { cancel(); <-done; np.Close(); hp.Close() }, nil
}

// waitJob polls a job every poll until it finishes.
func waitJob(ctx context.Context, st *export.Store, tenant, id string, poll time.Duration) (*export.Job, error) {
	for {
		j, err := st.Get(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		switch j.State {
		case export.StateQueued, export.StateRunning:
		case export.StateSucceeded:
			return j, nil
		default:
			return j, fmt.Errorf("export %s %s: %s", id, j.State, j.Error)
		}
		if err := sleep(ctx, poll); err != nil {
			return nil, err
		}
	}
}

// removeFiles deletes the export files of a run phase (gigabytes at 10
// million rows).
func (b *bench) removeFiles() {
	_ = os.RemoveAll(filepath.Join(b.cfg.Dir, bigTenant))
	_ = os.RemoveAll(filepath.Join(b.cfg.Dir, smallTenant))
}
