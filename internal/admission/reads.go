package admission

import (
	"container/list"
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// ReadsConfig tunes a Reads. Zero fields take their defaults.
type ReadsConfig struct {
	// Name labels the metrics of this cache ("cache" label). Required;
	// a-z, 0-9 and '_'.
	Name string
	// TTL is how long a value is served fresh without calling the
	// backend. Default 1 s.
	TTL time.Duration
	// MaxStale is how long past its TTL a value may still be served, stale
	// and marked so, when the backend fails or the read is shed. Default
	// 1 min.
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
	if c.TTL == 0 {
		c.TTL = time.Second
	}
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
	if c.TTL < 0 || c.MaxStale < 0 || c.CallTimeout < 0 || c.MaxEntries < 1 {
		return fmt.Errorf("reads config: TTL %v, MaxStale %v, CallTimeout %v, MaxEntries %d: want TTL, MaxStale, CallTimeout ≥ 0 and MaxEntries ≥ 1",
			c.TTL, c.MaxStale, c.CallTimeout, c.MaxEntries)
	}
	return nil
}

// Reads coalesces identical concurrent reads into one backend call
// (single flight) and keeps results for TTL, serving them stale for up to
// MaxStale more when a fresh read is impossible: the read was shed by the
// admission middleware (RejectionFrom) or the backend call failed. Safe for
// concurrent use.
type Reads[V any] struct {
	cfg   ReadsConfig
	now   func() time.Time
	group singleflight.Group

	mu      sync.Mutex
	entries map[string]*list.Element // guarded by mu; values are *entry[V]
	order   *list.List               // guarded by mu; front = stored longest ago

	results map[string]prometheus.Counter // by result, resolved once
}

type entry[V any] struct {
	key    string
	val    V
	stored time.Time
}

// Read results, the "result" label of bulwark_admission_reads_total.
const (
	readHit        = "hit"         // fresh from the cache
	readMiss       = "miss"        // this caller ran the backend call
	readCoalesced  = "coalesced"   // joined a call already running
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
		Help: "Coalesced reads by cache and result (hit, miss, coalesced, stale_shed, stale_error, error).",
	}, []string{"cache", "result"})
	if o.reg != nil {
		if err := o.reg.Register(vec); err != nil {
			are, ok := err.(prometheus.AlreadyRegisteredError)
			if !ok {
				return nil, fmt.Errorf("register reads metrics: %w", err)
			}
			vec = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	r := &Reads[V]{
		cfg: cfg, now: o.now, results: make(map[string]prometheus.Counter),
		entries: make(map[string]*list.Element), order: list.New(),
	}
	for _, res := range []string{readHit, readMiss, readCoalesced, readStaleShed, readStaleError, readError} {
		r.results[res] = vec.WithLabelValues(cfg.Name, res)
	}
	return r, nil
}

// Do returns the value for key: fresh from the cache, from a call for key
// already running, or from fn. If the read was shed (ctx carries a
// rejection from Middleware) fn is not called. If it was shed or fn fails,
// a stale value is returned with stale true and a nil error; mark the
// answer with MarkStale. With no value to fall back on, the error is the
// rejection (write it with WriteError) or fn's error. Do waits at most
// until ctx ends.
func (r *Reads[V]) Do(ctx context.Context, key string, fn func(context.Context) (V, error)) (v V, stale bool, err error) {
	cached, age, ok := r.lookup(key)
	if ok && age < r.cfg.TTL {
		r.count(readHit)
		return cached, false, nil
	}
	usable := ok && age < r.cfg.TTL+r.cfg.MaxStale
	if rej := RejectionFrom(ctx); rej != nil {
		if usable {
			r.count(readStaleShed)
			return cached, true, nil
		}
		r.count(readError)
		return v, false, rej
	}
	leader := false
	ch := r.group.DoChan(key, func() (any, error) {
		leader = true
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CallTimeout)
		defer cancel()
		val, err := fn(cctx)
		if err == nil {
			r.store(key, val)
		}
		return val, err
	})
	select {
	case <-ctx.Done():
		return v, false, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			if usable {
				r.count(readStaleError)
				return cached, true, nil
			}
			r.count(readError)
			return v, false, res.Err
		}
		if leader {
			r.count(readMiss)
		} else {
			r.count(readCoalesced)
		}
		return res.Val.(V), false, nil
	}
}

func (r *Reads[V]) count(result string) { r.results[result].Inc() }

// lookup returns key's value and its age, dropping it if it is past
// serving even stale.
func (r *Reads[V]) lookup(key string) (v V, age time.Duration, ok bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.entries[key]
	if !ok {
		return v, 0, false
	}
	e := el.Value.(*entry[V])
	age = now.Sub(e.stored)
	if age >= r.cfg.TTL+r.cfg.MaxStale {
		r.order.Remove(el)
		delete(r.entries, key)
		return v, 0, false
	}
	return e.val, age, true
}

func (r *Reads[V]) store(key string, v V) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
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
