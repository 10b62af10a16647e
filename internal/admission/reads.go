package admission

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReadsConfig tunes a Reads. Zero fields take their defaults.
type ReadsConfig struct {
	// Name labels the metrics of this cache ("cache" label). Required;
	// a-z, 0-9 and '_'.
	Name string
	// MaxStale is how long after it was read a value may still be served,
	// stale and marked so, when a fresh read is impossible (shed, or the
	// backend failed). Default 1 min.
	MaxStale time.Duration
	// MaxEntries bounds the cache; storing into a full cache evicts the
	// entry stored longest ago. Default 10,000.
	MaxEntries int
	// CallTimeout bounds one backend call. The call is shared by every
	// waiter for its key, so it runs detached from the first caller's
	// cancellation (it keeps its values) and ends at this timeout.
	// Default 10 s.
	CallTimeout time.Duration
}

func (c ReadsConfig) ensureDefaults() ReadsConfig {
	if c.MaxStale == 0 {
		c.MaxStale = time.Minute
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = 10_000
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
	return c
}

func (c ReadsConfig) validate() error {
	if err := checkName(c.Name); err != nil {
		return fmt.Errorf("reads config: Name: %w", err)
	}
	if c.MaxStale < 0 || c.CallTimeout < 0 || c.MaxEntries < 1 {
		return fmt.Errorf("reads config: MaxStale %v, CallTimeout %v, MaxEntries %d: want MaxStale, CallTimeout ≥ 0 and MaxEntries ≥ 1",
			c.MaxStale, c.CallTimeout, c.MaxEntries)
	}
	return nil
}

// Reads coalesces identical concurrent reads into few backend calls and
// keeps the last value of each key as a fallback, served (stale, marked
// so) only when a fresh read is impossible: the read was shed by the
// admission middleware (RejectionFrom) or the backend call failed. Safe for
// concurrent use.
//
// Every answer that is not marked stale was read by a backend call that
// started after the caller arrived, so a client that reads after its own
// acknowledged write sees that write. That rules out plain single flight
// (joining a call already running could return what it read before the
// write committed). Instead each key has at most one call running and one
// waiting: a caller joins the waiting call, which starts when the running
// one ends, so a read storm on one key costs at most one backend call at a
// time and each caller waits at most about two calls.
type Reads[V any] struct {
	cfg ReadsConfig
	now func() time.Time

	mu      sync.Mutex
	flights map[string]*flight[V]    // guarded by mu: the newest call per key, until it ends
	entries map[string]*list.Element // guarded by mu; values are *entry[V]
	order   *list.List               // guarded by mu; front = stored longest ago

	results map[string]prometheus.Counter // by result, resolved once
}

// flight is one backend call for a key. started and callers are guarded
// by Reads.mu; val and err are written once before done is closed.
type flight[V any] struct {
	started bool
	callers int        // callers waiting on this call
	after   *flight[V] // the call running when this one was created, or nil
	done    chan struct{}
	val     V
	err     error
}

type entry[V any] struct {
	key    string
	val    V
	stored time.Time
}

// Read results, the "result" label of bulwark_admission_reads_total.
const (
	readMiss       = "miss"        // this caller's call (it started it)
	readCoalesced  = "coalesced"   // joined a call that had not started yet
	readStaleShed  = "stale_shed"  // shed; served stale
	readStaleError = "stale_error" // backend failed; served stale
	readError      = "error"       // backend failed or shed, nothing to serve
)

// NewReads builds a Reads for values of type V.
func NewReads[V any](cfg ReadsConfig, opts ...Option) (*Reads[V], error) {
	cfg = cfg.ensureDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "bulwark", Subsystem: "admission", Name: "reads_total",
		Help: "Coalesced reads by cache and result (miss, coalesced, stale_shed, stale_error, error).",
	}, []string{"cache", "result"})
	if o.reg != nil {
		if err := o.reg.Register(vec); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("register reads metrics: %w", err)
			}
			vec = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	r := &Reads[V]{
		cfg: cfg, now: o.now, results: make(map[string]prometheus.Counter),
		flights: make(map[string]*flight[V]), entries: make(map[string]*list.Element), order: list.New(),
	}
	for _, res := range []string{readMiss, readCoalesced, readStaleShed, readStaleError, readError} {
		r.results[res] = vec.WithLabelValues(cfg.Name, res)
	}
	return r, nil
}

// Do returns the value for key, read by a call of fn that started after
// Do was called (shared with other callers of the same key). If the read
// was shed (ctx carries a rejection from Middleware) fn is not called. If
// it was shed or fn fails, the last value read for key within MaxStale is
// returned with stale true and a nil error; mark the answer with
// MarkStale. With no value to fall back on, the error is the rejection
// (write it with WriteError) or fn's error. Do waits at most until ctx
// ends.
func (r *Reads[V]) Do(ctx context.Context, key string, fn func(context.Context) (V, error)) (v V, stale bool, err error) {
	if rej := RejectionFrom(ctx); rej != nil {
		if cached, ok := r.lookup(key); ok {
			r.count(readStaleShed)
			return cached, true, nil
		}
		r.count(readError)
		return v, false, rej
	}
	f, leader := r.join(key, fn)
	select {
	case <-ctx.Done():
		return v, false, ctx.Err()
	case <-f.done:
	}
	if f.err != nil {
		if cached, ok := r.lookup(key); ok {
			r.count(readStaleError)
			return cached, true, nil
		}
		r.count(readError)
		return v, false, f.err
	}
	if leader {
		r.count(readMiss)
	} else {
		r.count(readCoalesced)
	}
	return f.val, false, nil
}

// join returns a call for key that has not started yet, creating it (and
// its goroutine, which waits for the running call first) when there is
// none; leader reports that this caller created it.
func (r *Reads[V]) join(key string, fn func(context.Context) (V, error)) (f *flight[V], leader bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last := r.flights[key]; last != nil && !last.started {
		last.callers++
		return last, false
	}
	f = &flight[V]{after: r.flights[key], done: make(chan struct{}), callers: 1}
	r.flights[key] = f
	// The goroutine is bounded by CallTimeout (plus the wait for the one
	// call before it, itself bounded), and at most two exist per key.
	go r.run(key, f, fn)
	return f, true
}

func (r *Reads[V]) run(key string, f *flight[V], fn func(context.Context) (V, error)) {
	if f.after != nil {
		<-f.after.done
	}
	r.mu.Lock()
	f.started, f.after = true, nil
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.CallTimeout)
	f.val, f.err = fn(ctx)
	cancel()
	r.mu.Lock()
	if f.err == nil {
		r.storeLocked(key, f.val)
	}
	if r.flights[key] == f {
		delete(r.flights, key)
	}
	r.mu.Unlock()
	close(f.done)
}

func (r *Reads[V]) count(result string) { r.results[result].Inc() }

// lookup returns key's last value if it is young enough to be served
// stale, dropping it otherwise.
func (r *Reads[V]) lookup(key string) (v V, ok bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.entries[key]
	if !ok {
		return v, false
	}
	e := el.Value.(*entry[V])
	if now.Sub(e.stored) >= r.cfg.MaxStale {
		r.order.Remove(el)
		delete(r.entries, key)
		return v, false
	}
	return e.val, true
}

func (r *Reads[V]) storeLocked(key string, v V) {
	now := r.now()
	if el, ok := r.entries[key]; ok {
		e := el.Value.(*entry[V])
		e.val, e.stored = v, now
		r.order.MoveToBack(el)
		return
	}
	for r.order.Len() >= r.cfg.MaxEntries {
		oldest := r.order.Front()
		delete(r.entries, oldest.Value.(*entry[V]).key)
		r.order.Remove(oldest)
	}
	r.entries[key] = r.order.PushBack(&entry[V]{key: key, val: v, stored: now})
}

// Len returns the number of cached entries, fresh or stale.
func (r *Reads[V]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.order.Len()
}

// MarkStale marks an answer as served from a stale cache entry.
func MarkStale(h http.Header) { h.Set(StaleHeader, "true") }
