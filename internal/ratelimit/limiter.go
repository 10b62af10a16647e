package ratelimit

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"
)

// DefaultMaxBuckets bounds the buckets of a Limiter: 100,000 × ~200 B ≈
// 20 MB, room for 1,000 tenants × 4 task types × 25 partitions in use.
const DefaultMaxBuckets = 100_000

// evictScanMax bounds the LRU entries inspected for an idle bucket on a
// full table, so a table full of waiters costs O(1), not O(MaxBuckets).
const evictScanMax = 64

// Errors callers test with errors.Is.
var (
	// ErrTooManyBuckets: the table is full of buckets that have waiters.
	ErrTooManyBuckets = errors.New("ratelimit: too many buckets in use")
	// ErrUnknownTask: the task type has no rate setting.
	ErrUnknownTask = errors.New("ratelimit: unknown task type")
)

// Key identifies one bucket.
type Key struct {
	Tenant    string
	Task      string // "recompute", "agg_backfill", ...
	Partition int32
}

// Rates supplies live rates.
type Rates interface {
	// Rate returns task's rate for tenant in tokens per second (0: paused)
	// and a channel closed when any rate may have changed; ok is false for
	// a task type without a rate.
	Rate(tenant, task string) (perSec float64, changed <-chan struct{}, ok bool)
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithMaxBuckets sets the bucket bound (default DefaultMaxBuckets).
func WithMaxBuckets(n int) Option { return func(l *Limiter) { l.maxBuckets = n } }

// WithRegisterer registers the limiter's metrics on reg (default: none).
func WithRegisterer(reg prometheus.Registerer) Option { return func(l *Limiter) { l.promReg = reg } }

// Limiter is a table of token buckets whose rates follow Rates.
type Limiter struct {
	rates      Rates
	maxBuckets int
	promReg    prometheus.Registerer

	mu      sync.Mutex
	buckets map[Key]*list.Element // guarded by mu; values are *bucket
	lru     list.List             // guarded by mu; front = most recently used

	m metrics
}

type bucket struct {
	key     Key
	lim     *rate.Limiter // has its own lock
	rate    float64       // guarded by Limiter.mu: the rate lim was set to
	waiters int           // guarded by Limiter.mu
}

type metrics struct {
	buckets   prometheus.Gauge
	evictions prometheus.Counter
	acquired  *prometheus.CounterVec
	denied    *prometheus.CounterVec
	paused    *prometheus.GaugeVec
	waitSecs  *prometheus.HistogramVec
}

// New returns a limiter reading rates from rates.
func New(rates Rates, opts ...Option) *Limiter {
	l := &Limiter{rates: rates, maxBuckets: DefaultMaxBuckets, buckets: make(map[Key]*list.Element)}
	for _, o := range opts {
		o(l)
	}
	if l.maxBuckets < 1 {
		panic(fmt.Sprintf("ratelimit: max buckets %d < 1", l.maxBuckets))
	}
	f := promauto.With(l.promReg)
	l.m = metrics{
		buckets: f.NewGauge(prometheus.GaugeOpts{Name: "bulwark_ratelimit_buckets",
			Help: "Token buckets in the table."}),
		evictions: f.NewCounter(prometheus.CounterOpts{Name: "bulwark_ratelimit_evictions_total",
			Help: "Idle buckets evicted because the table was full."}),
		acquired: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_ratelimit_acquired_total",
			Help: "Tokens granted, by task type and call (wait, try)."}, []string{"task", "call"}),
		denied: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_ratelimit_denied_total",
			Help: "Tokens refused, by task type and reason (paused, limited, too_many_buckets, canceled)."}, []string{"task", "reason"}),
		paused: f.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_ratelimit_paused_waiters",
			Help: "Callers blocked in Wait on a task type whose rate is 0."}, []string{"task"}),
		waitSecs: f.NewHistogramVec(prometheus.HistogramOpts{Name: "bulwark_ratelimit_wait_seconds",
			Help:    "Time Wait blocked before a token was granted.",
			Buckets: []float64{.001, .01, .1, .5, 1, 5, 30, 120}}, []string{"task"}),
	}
	return l
}

// Try takes a token if one is available now. It returns false when the
// task is paused, the bucket is empty, the task is unknown or the table is
// full of busy buckets.
func (l *Limiter) Try(key Key) bool {
	r, _, ok := l.rates.Rate(key.Tenant, key.Task)
	if !ok {
		return false
	}
	if r <= 0 {
		l.m.denied.WithLabelValues(key.Task, "paused").Inc()
		return false
	}
	b, err := l.acquire(key, r, false)
	if err != nil {
		l.m.denied.WithLabelValues(key.Task, "too_many_buckets").Inc()
		return false
	}
	if !b.lim.Allow() {
		l.m.denied.WithLabelValues(key.Task, "limited").Inc()
		return false
	}
	l.m.acquired.WithLabelValues(key.Task, "try").Inc()
	return true
}

// errRateChanged tells Wait to re-read the rate and try again.
var errRateChanged = errors.New("ratelimit: rate changed")

// Wait blocks until a token is granted or ctx ends (returning ctx.Err()).
// While the task's rate is 0 it waits for the rate to rise; a rate change
// while waiting for a token makes it re-read the rate, so the new rate
// applies to callers already waiting.
func (l *Limiter) Wait(ctx context.Context, key Key) error {
	start := time.Now()
	for {
		r, changed, ok := l.rates.Rate(key.Tenant, key.Task)
		if !ok {
			return fmt.Errorf("%w: %q", ErrUnknownTask, key.Task)
		}
		b, err := l.acquire(key, r, true)
		if err != nil {
			l.m.denied.WithLabelValues(key.Task, "too_many_buckets").Inc()
			return err
		}
		err = l.waitOn(ctx, b, r, changed)
		l.release(b)
		switch {
		case err == nil:
			l.m.acquired.WithLabelValues(key.Task, "wait").Inc()
			l.m.waitSecs.WithLabelValues(key.Task).Observe(time.Since(start).Seconds())
			return nil
		case errors.Is(err, errRateChanged):
			continue
		default:
			l.m.denied.WithLabelValues(key.Task, "canceled").Inc()
			return err
		}
	}
}

func (l *Limiter) waitOn(ctx context.Context, b *bucket, r float64, changed <-chan struct{}) error {
	if r <= 0 {
		g := l.m.paused.WithLabelValues(b.key.Task)
		g.Inc()
		defer g.Dec()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
			return errRateChanged
		}
	}
	res := b.lim.Reserve() // burst >= 1, so a single token is always reservable
	d := res.Delay()
	if d == 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		res.Cancel()
		return ctx.Err()
	case <-changed:
		res.Cancel()
		return errRateChanged
	}
}

// Rate returns the current rate of key's task for its tenant and a channel
// closed when any rate may have changed (see Rates): a caller doing work
// under a token watches it to stop that work as soon as the rate drops to 0.
func (l *Limiter) Rate(tenant, task string) (perSec float64, changed <-chan struct{}, ok bool) {
	return l.rates.Rate(tenant, task)
}

// burst is one second of tokens, at least one.
func burst(r float64) int { return int(max(1, math.Ceil(r))) }

// acquire returns key's bucket set to rate r, creating it (and evicting an
// idle one when full) as needed; wait marks the caller as a waiter.
func (l *Limiter) acquire(key Key, r float64, wait bool) (*bucket, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.buckets[key]
	if ok {
		l.lru.MoveToFront(e)
	} else {
		if len(l.buckets) >= l.maxBuckets && !l.evictLocked() {
			return nil, fmt.Errorf("%w: %d buckets, all with waiters", ErrTooManyBuckets, len(l.buckets))
		}
		b := &bucket{key: key, rate: r, lim: rate.NewLimiter(rate.Limit(max(r, 0)), burst(r))}
		e = l.lru.PushFront(b)
		l.buckets[key] = e
		l.m.buckets.Set(float64(len(l.buckets)))
	}
	b := e.Value.(*bucket)
	if b.rate != r {
		now := time.Now()
		b.lim.SetLimitAt(now, rate.Limit(max(r, 0)))
		b.lim.SetBurstAt(now, burst(r))
		b.rate = r
	}
	if wait {
		b.waiters++
	}
	return b, nil
}

func (l *Limiter) release(b *bucket) {
	l.mu.Lock()
	b.waiters--
	l.mu.Unlock()
}

// evictLocked removes the least recently used bucket without waiters among
// the last evictScanMax, reporting whether it found one.
func (l *Limiter) evictLocked() bool {
	e := l.lru.Back()
	for i := 0; e != nil && i < evictScanMax; i++ {
		b := e.Value.(*bucket)
		if b.waiters == 0 {
			l.lru.Remove(e)
			delete(l.buckets, b.key)
			l.m.evictions.Inc()
			l.m.buckets.Set(float64(len(l.buckets)))
			return true
		}
		e = e.Prev()
	}
	return false
}

// Len returns the number of buckets.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
