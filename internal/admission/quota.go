package admission

import (
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Quota classes: the tenant's whole traffic, or one traffic type that an
// API key is entitled to claim.
const (
	ClassAll     = ""        // every request of the tenant (quota.requests_per_sec)
	ClassBatch   = "batch"   // traffic type batch (quota.batch.*)
	ClassCrawler = "crawler" // traffic type crawler (quota.crawler.*)
)

// Limit is one token bucket: PerSec tokens a second, at most Burst.
type Limit struct {
	PerSec float64 // > 0 and finite
	Burst  int     // ≥ 1
}

func (l Limit) validate() error {
	if !(l.PerSec > 0) || math.IsInf(l.PerSec, 0) {
		return fmt.Errorf("rate %g per second: want a finite number > 0", l.PerSec)
	}
	if l.Burst < 1 {
		return fmt.Errorf("burst %d: want ≥ 1", l.Burst)
	}
	return nil
}

// QuotaSet is every request quota, as the control plane derives it from
// the settings: Default limits by class for tenants without an override,
// and Tenants' overrides by class. A class with no limit at all is not
// limited. The zero QuotaSet limits nothing.
type QuotaSet struct {
	Default map[string]Limit
	Tenants map[string]map[string]Limit
}

// validate checks every limit. The number of overrides is bounded where
// they are stored (the control plane's too_many_overrides), not here:
// refusing a set because of its size would leave quotas silently unapplied.
func (s QuotaSet) validate() error {
	for class, l := range s.Default {
		if err := l.validate(); err != nil {
			return fmt.Errorf("quota: default %q: %w", class, err)
		}
	}
	for t, byClass := range s.Tenants {
		if t == "" {
			return fmt.Errorf("quota: empty tenant")
		}
		for class, l := range byClass {
			if err := l.validate(); err != nil {
				return fmt.Errorf("quota for tenant %q %q: %w", t, class, err)
			}
		}
	}
	return nil
}

// limit returns the limit of (tenant, class), if any.
func (s *QuotaSet) limit(tenant, class string) (Limit, bool) {
	if byClass, ok := s.Tenants[tenant]; ok {
		if l, ok := byClass[class]; ok {
			return l, true
		}
	}
	l, ok := s.Default[class]
	return l, ok
}

// quotas owns every quota bucket: one per (tenant, class) seen since it
// was last evicted, created on the tenant's first request from the current
// QuotaSet. Lookups take a read lock; a bucket is created under the write
// lock, and at most max exist: creating one in a full table first evicts
// an arbitrary eighth of the table (map order), which bounds memory at one
// policy for every kind of quota. An evicted bucket comes back full on its
// tenant's next request, which can only grant that tenant one extra burst.
type quotas struct {
	max int

	wmu     sync.Mutex // serialises writers (update); lock order: wmu, then mu
	mu      sync.RWMutex
	set     QuotaSet                 // guarded by mu
	buckets map[bucketKey]*rateLimit // guarded by mu
	evicted int64                    // guarded by mu; buckets evicted, for metrics
}

type bucketKey struct{ tenant, class string }

type rateLimit struct {
	limit Limit
	lim   *rate.Limiter
}

func newQuotas(max int) *quotas {
	return &quotas{max: max, buckets: make(map[bucketKey]*rateLimit)}
}

// allow takes one token of (tenant, class)'s bucket at now. Tenants whose
// id starts with '*' (the admin key's "*admin") and classes without a
// limit are always allowed. When the bucket is empty it returns the time
// until the next token.
func (q *quotas) allow(tenant, class string, now time.Time) (bool, time.Duration) {
	if tenant == "" || tenant[0] == '*' {
		return true, 0
	}
	k := bucketKey{tenant, class}
	q.mu.RLock()
	b := q.buckets[k]
	q.mu.RUnlock()
	if b == nil {
		if b = q.create(k); b == nil {
			return true, 0
		}
	}
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.lim.TokensAt(now)
	return false, time.Duration(missing / float64(b.lim.Limit()) * float64(time.Second))
}

// create makes k's bucket from the current set (nil: no limit applies).
func (q *quotas) create(k bucketKey) *rateLimit {
	q.mu.Lock()
	defer q.mu.Unlock()
	if b := q.buckets[k]; b != nil {
		return b
	}
	l, ok := q.set.limit(k.tenant, k.class)
	if !ok {
		return nil
	}
	if len(q.buckets) >= q.max {
		q.evictLocked(max(q.max/8, 1))
	}
	b := &rateLimit{limit: l, lim: rate.NewLimiter(rate.Limit(l.PerSec), l.Burst)}
	q.buckets[k] = b
	return b
}

func (q *quotas) evictLocked(n int) {
	for k := range q.buckets {
		if n == 0 {
			return
		}
		delete(q.buckets, k)
		q.evicted++
		n--
	}
}

// replace installs set (callers hold wmu). Every existing bucket takes its new limit: a
// raised limit applies at once with a full bucket; a lowered one keeps the
// tokens left (they are fewer than the old bucket's); a class that lost
// its limit loses its bucket.
func (q *quotas) replace(set QuotaSet, now time.Time) error {
	if err := set.validate(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.set = set
	for k, b := range q.buckets {
		l, ok := set.limit(k.tenant, k.class)
		switch {
		case !ok:
			delete(q.buckets, k)
		case l == b.limit:
		case l.PerSec > b.limit.PerSec || l.Burst > b.limit.Burst:
			q.buckets[k] = &rateLimit{limit: l, lim: rate.NewLimiter(rate.Limit(l.PerSec), l.Burst)}
		default:
			b.lim.SetLimitAt(now, rate.Limit(l.PerSec))
			b.lim.SetBurstAt(now, l.Burst)
			b.limit = l
		}
	}
	return nil
}

// update replaces the set with fn's answer to the current one, atomically
// with respect to other writers.
func (q *quotas) update(now time.Time, fn func(cur QuotaSet) QuotaSet) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.mu.RLock()
	cur := q.set
	q.mu.RUnlock()
	return q.replace(fn(cur), now)
}

// withTenant returns a copy of s in which tenant's limit of class is l
// (nil: no override).
func withTenant(s QuotaSet, tenant, class string, l *Limit) QuotaSet {
	next := QuotaSet{Default: s.Default, Tenants: make(map[string]map[string]Limit, len(s.Tenants)+1)}
	for t, byClass := range s.Tenants {
		next.Tenants[t] = byClass
	}
	byClass := make(map[string]Limit, len(next.Tenants[tenant])+1)
	for c, x := range next.Tenants[tenant] {
		byClass[c] = x
	}
	if l == nil {
		delete(byClass, class)
	} else {
		byClass[class] = *l
	}
	if len(byClass) == 0 {
		delete(next.Tenants, tenant)
	} else {
		next.Tenants[tenant] = byClass
	}
	return next
}

// sizes returns the number of buckets and of evictions so far.
func (q *quotas) sizes() (buckets int, evicted int64) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return len(q.buckets), q.evicted
}
