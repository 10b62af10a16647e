package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
)

// Config of the export workers of one process.
type Config struct {
	// Dir holds the export files, one directory per tenant. Required.
	Dir string
	// WorkerID names this process's workers in leases. It must be stable
	// across restarts and unique among processes: at start the runner
	// releases the leases this id held (its previous life was killed), so
	// those jobs resume at once instead of after their lease expires.
	// Empty means hostname + ":" + Dir.
	WorkerID string
	// NormalWorkers and HugeWorkers are the workers of each queue, each
	// exporting one job at a time. Zero means 2 each.
	NormalWorkers, HugeWorkers int
	// Lease is how long a claim holds without a heartbeat (a third of it
	// apart). Zero means 30 s.
	Lease time.Duration
	// MaxAttempts caps the claims of one job since its last checkpoint
	// (worker deaths and errors alike); the claim past it fails the job
	// with the last error. An export that progresses is never failed by
	// restarts. Zero means 10.
	MaxAttempts int
	// Poll is how often an idle worker looks for a job. Zero means 250 ms:
	// a new export waits at most that long for an idle worker, and each
	// idle worker costs the database 4 short transactions a second.
	Poll time.Duration
	// SettleMax bounds the wait, before the first chunk, for ledger
	// transactions older than the cut-off (see settle). Zero means 40 s:
	// longer than the ledger's commit timeout (30 s), so every ledger batch
	// has ended by then.
	SettleMax time.Duration
	// SweepEvery is the period of the retention sweep and of the queue
	// metrics. Zero means 5 s.
	SweepEvery time.Duration
}

func (c *Config) ensureDefaults() error {
	if c.Dir == "" {
		return errors.New("export: Config.Dir is required")
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		abs, _ := filepath.Abs(c.Dir)
		c.WorkerID = host + ":" + abs
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.NormalWorkers, 2)
	def(&c.HugeWorkers, 2)
	def(&c.MaxAttempts, 10)
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defDur(&c.Lease, 30*time.Second)
	defDur(&c.Poll, 250*time.Millisecond)
	defDur(&c.SettleMax, 40*time.Second)
	defDur(&c.SweepEvery, 5*time.Second)
	if c.NormalWorkers < 0 || c.HugeWorkers < 0 || c.MaxAttempts < 1 || c.Lease < time.Second {
		return fmt.Errorf("export: bad config: workers %d/%d, max attempts %d, lease %v",
			c.NormalWorkers, c.HugeWorkers, c.MaxAttempts, c.Lease)
	}
	return nil
}

// Runner runs the export workers of one process: a pool of workers per
// queue, each on its own database pool, and a sweeper (retention, queue
// metrics). Huge exports take one token of the rate limiter
// (control.TaskExportHuge, partition 0: per tenant) per chunk.
type Runner struct {
	cfg      Config
	pools    map[string]*pgxpool.Pool // by queue
	settings Settings
	limiter  *ratelimit.Limiter
	log      *slog.Logger
	m        *metrics

	// afterChunk, when set (tests), runs after each checkpoint.
	afterChunk func(j *Job)
}

// NewRunner returns a runner reading normal exports on normal and huge
// ones on huge (two dedicated pools; see OpenPool), throttled by limiter.
func NewRunner(cfg Config, normal, huge *pgxpool.Pool, settings Settings, limiter *ratelimit.Limiter,
	log *slog.Logger, reg prometheus.Registerer,
) (*Runner, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, pools: map[string]*pgxpool.Pool{QueueNormal: normal, QueueHuge: huge},
		settings: settings, limiter: limiter, log: log}
	r.m = newMetrics(reg, r.pools)
	return r, nil
}

// Run runs the workers until ctx ends, then waits for them: a job being
// exported stops at once, releasing its lease so it resumes from its last
// checkpoint at the next start.
func (r *Runner) Run(ctx context.Context) error {
	if err := os.MkdirAll(r.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("export dir: %w", err)
	}
	if _, err := r.pools[QueueNormal].Exec(ctx, `UPDATE export_jobs SET lease_until = now()
		WHERE state = 'running' AND claimed_by LIKE $1 || '#%'`, r.cfg.WorkerID); err != nil {
		return fmt.Errorf("release leases of a previous run: %w", err)
	}
	var wg sync.WaitGroup
	for _, q := range []struct {
		name string
		n    int
	}{{QueueNormal, r.cfg.NormalWorkers}, {QueueHuge, r.cfg.HugeWorkers}} {
		for i := range q.n {
			wg.Go(func() { r.work(ctx, q.name, fmt.Sprintf("%s#%s#%d", r.cfg.WorkerID, q.name, i)) })
		}
	}
	wg.Go(func() { r.sweep(ctx) })
	wg.Wait()
	return nil
}

// work claims and exports jobs of queue one at a time until ctx ends.
func (r *Runner) work(ctx context.Context, queue, worker string) {
	pool := r.pools[queue]
	for ctx.Err() == nil {
		j, err := claim(ctx, pool, queue, worker, r.cfg.Lease, r.cfg.MaxAttempts, r.settings)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("export claim", "queue", queue, "err", err)
		}
		if j == nil {
			sleep(ctx, r.cfg.Poll)
			continue
		}
		r.m.busy.WithLabelValues(queue).Inc()
		r.run(ctx, pool, j, worker)
		r.m.busy.WithLabelValues(queue).Dec()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// run exports one claimed job with a heartbeat beside it, and records
// the outcome.
func (r *Runner) run(ctx context.Context, pool *pgxpool.Pool, j *Job, worker string) {
	jctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.heartbeat(jctx, cancel, pool, j, worker) })
	err := r.export(jctx, pool, j, worker) // nil: the guarded update made it succeeded
	cancel(nil)
	wg.Wait()
	// Outcome updates must run even when ctx (shutdown) has ended.
	octx, ocancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer ocancel()
	path := r.path(j)
	switch {
	case err == nil:
		r.m.jobs.WithLabelValues(j.Queue, StateSucceeded).Inc()
	case errors.Is(err, errLost) || errors.Is(context.Cause(jctx), errLost):
		r.m.jobs.WithLabelValues(j.Queue, "lost").Inc()
		if st, gerr := r.state(octx, pool, j); gerr == nil && st == StateCancelled {
			removeFile(path)
		}
	case ctx.Err() != nil:
		// Shutdown: hand the job back at once; it resumes from its
		// checkpoint (this or another process).
		_ = owned(octx, pool, j, worker, `lease_until = now(), attempts = greatest(attempts - 1, 0), stalled = greatest(stalled - 1, 0)`)
	default:
		r.m.failures.WithLabelValues(j.Queue).Inc()
		r.log.Warn("export attempt failed", "tenant", j.Tenant, "id", j.ID, "attempt", j.Attempts, "err", err)
		if j.Stalled >= r.cfg.MaxAttempts {
			removeFile(path)
			_ = owned(octx, pool, j, worker, `state = 'failed', finished_at = now(), claimed_by = NULL, lease_until = NULL,
				file_offset = 0, error = $4`, fmt.Sprintf("gave up after %d attempts without progress: %v", j.Stalled, err))
			r.m.jobs.WithLabelValues(j.Queue, StateFailed).Inc()
			return
		}
		// Retry later from the checkpoint, backing off with the attempts.
		backoff := time.Duration(j.Attempts) * time.Second
		_ = owned(octx, pool, j, worker, `lease_until = now() + $4::interval, error = $5`, backoff.String(), err.Error())
	}
}

func (r *Runner) state(ctx context.Context, pool *pgxpool.Pool, j *Job) (string, error) {
	var st string
	err := pool.QueryRow(ctx, `SELECT state FROM export_jobs WHERE tenant_id = $1 AND id = $2`, j.Tenant, j.ID).Scan(&st)
	return st, err
}

func removeFile(path string) {
	_ = os.Remove(path) // absent already is fine; a failure leaves a file the retention sweep retries
}

// heartbeat extends the lease every third of it while the job runs, also
// while it waits for a rate token (a paused huge export keeps its lease);
// a lost job (cancelled, taken over) cancels the export.
func (r *Runner) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, pool *pgxpool.Pool, j *Job, worker string) {
	t := time.NewTicker(r.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := owned(ctx, pool, j, worker, `lease_until = now() + $4::interval`, r.cfg.Lease.String())
		if errors.Is(err, errLost) {
			cancel(errLost)
			return
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("export heartbeat", "id", j.ID, "err", err) // the next beat retries; the lease has 2 more
		}
	}
}

// path is the file of j: <Dir>/<tenant>/<id>.<format>[.gz].
func (r *Runner) path(j *Job) string { return filePath(r.cfg.Dir, j) }

func filePath(dir string, j *Job) string { return filepath.Join(dir, j.Tenant, j.fileName()) }

// waitToken waits for the huge queue's rate: one token per chunk, per
// tenant (partition 0). Rate 0 pauses here; the heartbeat keeps the lease.
func (r *Runner) waitToken(ctx context.Context, j *Job) error {
	if j.Queue != QueueHuge || r.limiter == nil {
		return nil
	}
	return r.limiter.Wait(ctx, ratelimit.Key{Tenant: j.Tenant, Task: control.TaskExportHuge, Partition: 0})
}
