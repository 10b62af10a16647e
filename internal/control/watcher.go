package control

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Defaults of the watcher's timing. A change reaches a process by NOTIFY in
// a few milliseconds; when a notification is lost (listener reconnecting,
// network blip) the poll finds the new version within DefaultPollInterval,
// so a change is applied within 1 s either way: 500 ms poll + one reload
// (a few ms for thousands of overrides) leaves half the budget spare.
const (
	DefaultPollInterval = 500 * time.Millisecond
	DefaultQueryTimeout = 2 * time.Second
	// DefaultMaxBackoff caps the retry interval while the store is down
	// (polls back off 0.5 s, 1 s, 2 s, 4 s, 5 s, 5 s ... with ±20% jitter).
	DefaultMaxBackoff = 5 * time.Second
)

// Option configures a Watcher.
type Option func(*Watcher)

// WithPollInterval sets how often the version is checked (default 500 ms).
func WithPollInterval(d time.Duration) Option { return func(w *Watcher) { w.poll = d } }

// WithMaxBackoff caps the retry interval while the store is unreachable.
func WithMaxBackoff(d time.Duration) Option { return func(w *Watcher) { w.maxBackoff = d } }

// WithoutListen disables LISTEN/NOTIFY, leaving only the poll (tests use it
// to prove that the poll alone heals a missed notification).
func WithoutListen() Option { return func(w *Watcher) { w.listen = false } }

// Watcher keeps the current Snapshot of every setting in memory, following
// the store by LISTEN/NOTIFY and a periodic version check. When the store is
// unreachable it keeps serving the last snapshot it applied (the last known
// good settings) and retries with backoff.
//
// Concurrency: Run owns two goroutines (the poll loop and the listener) and
// waits for both before returning. Reads (Current and the typed getters)
// are one atomic load and never block. Snapshots are applied, and OnChange
// callbacks run, under applyMu, in version order.
type Watcher struct {
	pool       *pgxpool.Pool
	defs       []*keyDef
	log        *slog.Logger
	now        func() time.Time
	poll       time.Duration
	maxBackoff time.Duration
	listen     bool

	snap   atomic.Pointer[Snapshot]
	lastOK atomic.Int64 // unix ns of the last successful version check
	kick   chan int64   // notified versions; capacity 1, coalescing

	applyMu sync.Mutex
	subs    map[int]func(*Snapshot) // guarded by applyMu
	nextSub int                     // guarded by applyMu

	m watcherMetrics
}

type watcherMetrics struct {
	version     prometheus.Gauge
	up          prometheus.Gauge
	invalid     prometheus.Gauge
	reloads     *prometheus.CounterVec
	errors      *prometheus.CounterVec
	propagation prometheus.Histogram
}

// NewWatcher returns a watcher of reg's settings in pool's database. It
// serves the defaults until its first load (Sync, or Run's first poll). The
// registry is frozen: keys must be defined before. Metrics go to
// promReg (nil: not registered).
func NewWatcher(pool *pgxpool.Pool, reg *Registry, log *slog.Logger, promReg prometheus.Registerer, opts ...Option) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		pool: pool, defs: reg.freeze(), log: log, now: time.Now,
		poll: DefaultPollInterval, maxBackoff: DefaultMaxBackoff, listen: true,
		kick: make(chan int64, 1), subs: make(map[int]func(*Snapshot)),
	}
	for _, o := range opts {
		o(w)
	}
	if w.poll <= 0 || w.maxBackoff < w.poll {
		panic(fmt.Sprintf("control: poll interval %v must be > 0 and <= max backoff %v", w.poll, w.maxBackoff))
	}
	s, _ := buildSnapshot(w.defs, 0, nil, w.now())
	w.snap.Store(s)
	w.lastOK.Store(w.now().UnixNano())
	f := promauto.With(promReg)
	w.m = watcherMetrics{
		version: f.NewGauge(prometheus.GaugeOpts{Name: "bulwark_control_applied_version",
			Help: "Settings version this process applies (0: defaults only)."}),
		up: f.NewGauge(prometheus.GaugeOpts{Name: "bulwark_control_store_up",
			Help: "1 if the last check of the settings store succeeded, else 0 (serving last known good)."}),
		invalid: f.NewGauge(prometheus.GaugeOpts{Name: "bulwark_control_invalid_overrides",
			Help: "Stored overrides skipped in the applied snapshot (unknown key or rejected value)."}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_control_reloads_total",
			Help: "Snapshots applied, by what noticed the change (notify, poll, sync)."}, []string{"trigger"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_control_errors_total",
			Help: "Failed store operations of the watcher, by operation (poll, listen)."}, []string{"op"}),
		propagation: f.NewHistogram(prometheus.HistogramOpts{Name: "bulwark_control_propagation_seconds",
			Help:    "Time from a change's commit (database clock) to its application here.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
	}
	// Every label value exists from the start, so that alerts and panels
	// read 0 rather than nothing before the first event.
	for _, op := range []string{"poll", "listen"} {
		w.m.errors.WithLabelValues(op)
	}
	for _, t := range []string{"notify", "poll", "sync"} {
		w.m.reloads.WithLabelValues(t)
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "bulwark_control_staleness_seconds",
		Help: "Seconds since the settings store was last checked successfully."},
		func() float64 { return w.Staleness().Seconds() })
	return w
}

// Current returns the snapshot in force.
func (w *Watcher) Current() *Snapshot { return w.snap.Load() }

// Version returns the version in force.
func (w *Watcher) Version() int64 { return w.snap.Load().version }

// Staleness is the time since the store was last checked successfully.
func (w *Watcher) Staleness() time.Duration {
	return w.now().Sub(time.Unix(0, w.lastOK.Load()))
}

// Int, Float, Bool, Duration and Text read one setting of the current
// snapshot; they panic on a key that is not defined with that type.
func (w *Watcher) Int(tenant, key string) int64     { return w.snap.Load().Int(tenant, key) }
func (w *Watcher) Float(tenant, key string) float64 { return w.snap.Load().Float(tenant, key) }
func (w *Watcher) Bool(tenant, key string) bool     { return w.snap.Load().Bool(tenant, key) }
func (w *Watcher) Text(tenant, key string) string   { return w.snap.Load().Text(tenant, key) }
func (w *Watcher) Duration(tenant, key string) time.Duration {
	return w.snap.Load().Duration(tenant, key)
}

// OnChange registers fn to run after each newly applied snapshot, on the
// watcher's goroutine, in version order. fn must return quickly and must not
// call Sync. It returns a function that unregisters fn.
func (w *Watcher) OnChange(fn func(*Snapshot)) (cancel func()) {
	w.applyMu.Lock()
	id := w.nextSub
	w.nextSub++
	w.subs[id] = fn
	w.applyMu.Unlock()
	return func() {
		w.applyMu.Lock()
		delete(w.subs, id)
		w.applyMu.Unlock()
	}
}

// Sync checks the store now and applies a newer version. Call it once at
// start-up so that the process serves stored settings from its first request.
func (w *Watcher) Sync(ctx context.Context) error {
	return w.refresh(ctx, "sync")
}

// Run follows the store until ctx ends, then returns nil after its
// goroutines have stopped. Store errors never end it: they are counted,
// logged on state changes, and retried with backoff.
func (w *Watcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if w.listen {
		wg.Go(func() { w.listenLoop(ctx) })
	}
	w.pollLoop(ctx)
	wg.Wait()
	return nil
}

func (w *Watcher) pollLoop(ctx context.Context) {
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		trigger := "poll"
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case v := <-w.kick:
			if v > 0 && v <= w.Version() {
				continue // our own Sync, or a poll, got there first
			}
			trigger = "notify"
		}
		err := w.refresh(ctx, trigger)
		switch {
		case err != nil && ctx.Err() == nil:
			failures++
			w.m.errors.WithLabelValues("poll").Inc()
			if failures == 1 || failures%20 == 0 {
				w.log.Warn("control: settings store unreachable; serving last known good",
					"version", w.Version(), "failures", failures, "err", err)
			}
		case err == nil && failures > 0:
			w.log.Info("control: settings store reachable again", "version", w.Version(), "failures", failures)
			failures = 0
		}
		timer.Reset(backoff(w.poll, w.maxBackoff, failures))
	}
}

// backoff returns base while healthy, then doubles per failure up to max,
// with ±20% jitter so that a fleet does not retry in step.
func backoff(base, max time.Duration, failures int) time.Duration {
	if failures == 0 {
		return base
	}
	d := base << min(failures-1, 16)
	if d > max || d <= 0 {
		d = max
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// refresh checks the version and reloads when it differs from the applied one.
func (w *Watcher) refresh(ctx context.Context, trigger string) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultQueryTimeout)
	defer cancel()
	var version int64
	err := w.pool.QueryRow(ctx, "SELECT version FROM control_version").Scan(&version)
	if err != nil && ctx.Err() == nil {
		// The query only reads, so one immediate retry is always safe; it
		// takes a fresh connection when the failed one was killed, which is
		// the common failure (failover, pg_terminate_backend, idle timeout).
		err = w.pool.QueryRow(ctx, "SELECT version FROM control_version").Scan(&version)
	}
	if err != nil {
		w.m.up.Set(0)
		return fmt.Errorf("control: check version: %w", err)
	}
	if version != w.Version() {
		if err := w.reload(ctx, trigger); err != nil {
			w.m.up.Set(0)
			return err
		}
	}
	w.lastOK.Store(w.now().UnixNano())
	w.m.up.Set(1)
	return nil
}

// reload reads every override at one version and applies the snapshot.
func (w *Watcher) reload(ctx context.Context, trigger string) error {
	var (
		version int64
		changed time.Time
		rows    []override
	)
	err := pgx.BeginTxFunc(ctx, w.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT version, changed_at FROM control_version").Scan(&version, &changed); err != nil {
			return err
		}
		r, err := tx.Query(ctx, "SELECT tenant_id, key, value FROM control_settings LIMIT $1", MaxOverrides+1)
		if err != nil {
			return err
		}
		rows, err = pgx.CollectRows(r, func(row pgx.CollectableRow) (override, error) {
			var o override
			return o, row.Scan(&o.tenant, &o.key, &o.value)
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("control: reload: %w", err)
	}
	w.applyMu.Lock()
	defer w.applyMu.Unlock()
	old := w.snap.Load()
	if version == old.version {
		return nil // a concurrent refresh applied it
	}
	if version < old.version {
		w.log.Warn("control: store version went backwards (database restored?); following it",
			"applied", old.version, "store", version)
	}
	s, bad := buildSnapshot(w.defs, version, rows, w.now())
	w.snap.Store(s)
	close(old.superseded)
	w.m.invalid.Set(float64(bad))
	w.m.reloads.WithLabelValues(trigger).Inc()
	w.m.propagation.Observe(max(0, w.now().Sub(changed).Seconds()))
	if bad > 0 {
		w.log.Warn("control: skipped stored overrides that this binary does not accept", "version", version, "count", bad)
	}
	for _, fn := range w.subs {
		fn(s)
	}
	// Last: the version says the snapshot is applied, its subscribers
	// (admission rules and quotas) included, so tests and operators can
	// wait on it.
	w.m.version.Set(float64(version))
	return nil
}

// listenLoop keeps a LISTEN connection open and forwards notifications to
// the poll loop, reconnecting with backoff. After each (re)connect it kicks
// a check, since notifications sent while it was away are lost.
func (w *Watcher) listenLoop(ctx context.Context) {
	failures := 0
	for {
		started := w.now()
		err := w.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if w.now().Sub(started) > w.maxBackoff {
			failures = 0 // it ran a while: a fresh failure, not a persistent one
		}
		failures++
		w.m.errors.WithLabelValues("listen").Inc()
		if failures == 1 || failures%20 == 0 {
			w.log.Warn("control: settings listener lost; polling covers the gap", "failures", failures, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff(w.poll, w.maxBackoff, failures)):
		}
	}
}

func (w *Watcher) listenOnce(ctx context.Context) error {
	pc, err := w.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection leaves the pool: it stays in LISTEN for its lifetime
	// and is closed here, never handed to another user.
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx) // the connection is discarded either way
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	w.wake(0)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		v, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			v = 0 // unknown payload: check anyway
		}
		w.wake(v)
	}
}

// wake asks the poll loop to check now; a pending request already covers it.
func (w *Watcher) wake(version int64) {
	select {
	case w.kick <- version:
	default:
	}
}
