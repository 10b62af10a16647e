package admission

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Quota is one tenant's request quota: a token bucket refilled at PerSec
// tokens a second holding at most Burst tokens.
type Quota struct {
	Tenant string
	PerSec float64 // > 0
	Burst  int     // ≥ 1
}

func (q Quota) validate() error {
	if q.Tenant == "" {
		return fmt.Errorf("quota: empty tenant")
	}
	if !(q.PerSec > 0) || math.IsInf(q.PerSec, 0) {
		return fmt.Errorf("quota for tenant %q: rate %g per second: want a finite number > 0", q.Tenant, q.PerSec)
	}
	if q.Burst < 1 {
		return fmt.Errorf("quota for tenant %q: burst %d: want ≥ 1", q.Tenant, q.Burst)
	}
	return nil
}

// quotas holds the per-tenant token buckets. Reads (one per Admit) load an
// immutable map without a lock; writers, which come from the control plane
// a few times a minute, copy the map under mu. A changed rate for a known
// tenant updates its bucket in place, so its tokens survive the change.
type quotas struct {
	max int
	m   atomic.Pointer[map[string]*rate.Limiter]
	mu  sync.Mutex // serialises writers
}

func newQuotas(max int) *quotas {
	q := &quotas{max: max}
	empty := map[string]*rate.Limiter{}
	q.m.Store(&empty)
	return q
}

// allow takes one token of tenant's bucket at now. A tenant without a
// quota is always allowed. When the bucket is empty it returns the time
// until the next token.
func (q *quotas) allow(tenant string, now time.Time) (bool, time.Duration) {
	lim, ok := (*q.m.Load())[tenant]
	if !ok {
		return true, 0
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - lim.TokensAt(now)
	return false, time.Duration(missing / float64(lim.Limit()) * float64(time.Second))
}

// set adds or updates quotas. With replace, tenants not in qs lose their
// quota. Either every quota is valid and all apply, or none does.
func (q *quotas) set(qs []Quota, replace bool, now time.Time) error {
	for _, x := range qs {
		if err := x.validate(); err != nil {
			return err
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	old := *q.m.Load()
	next := make(map[string]*rate.Limiter, len(old)+len(qs))
	if !replace {
		for t, l := range old {
			next[t] = l
		}
	}
	for _, x := range qs {
		if l, ok := old[x.Tenant]; ok {
			next[x.Tenant] = l
			continue
		}
		next[x.Tenant] = nil // placeholder: created below, after the size check
	}
	if len(next) > q.max {
		return fmt.Errorf("quota: %d tenants, more than MaxTenantQuotas %d", len(next), q.max)
	}
	for _, x := range qs {
		if l := next[x.Tenant]; l != nil {
			l.SetLimitAt(now, rate.Limit(x.PerSec))
			l.SetBurstAt(now, x.Burst)
			continue
		}
		next[x.Tenant] = rate.NewLimiter(rate.Limit(x.PerSec), x.Burst)
	}
	q.m.Store(&next)
	return nil
}

func (q *quotas) remove(tenant string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	old := *q.m.Load()
	if _, ok := old[tenant]; !ok {
		return
	}
	next := make(map[string]*rate.Limiter, len(old))
	for t, l := range old {
		if t != tenant {
			next[t] = l
		}
	}
	q.m.Store(&next)
}
