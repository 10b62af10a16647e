package admission

import (
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Controller decides, per request, whether to admit it. Safe for concurrent
// use; Admit and Ticket.Done never block and do not allocate on the accept
// path. It starts no goroutine: the estimate and the threshold are moved by
// whichever request first notices that an interval has passed.
type Controller struct {
	cfg   Config
	now   func() time.Time
	epoch time.Time // controller time is nanoseconds since epoch

	rules    atomic.Pointer[Rules]
	inflight atomic.Int64
	lim      *limiter
	thr      threshold
	burst    *burst // nil when BurstLimit is 0
	quotas   *quotas
	m        *metrics
	tracer   trace.Tracer // nil: tracing off

	collapseDelayNs int64
}

// New builds a Controller with DefaultRules and no tenant quotas.
func New(cfg Config, opts ...Option) (*Controller, error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	c := &Controller{
		cfg:             cfg,
		now:             o.now,
		epoch:           o.now(),
		quotas:          newQuotas(cfg.MaxTenantQuotas),
		collapseDelayNs: int64(cfg.CollapseQueueDelay),
	}
	c.rules.Store(DefaultRules())
	c.lim = newLimiter(&c.cfg, 0)
	c.thr.interval = int64(cfg.ControlInterval)
	if cfg.BurstLimit > 0 {
		c.burst = newBurst(cfg.BurstLimit, int64(cfg.BurstWindow))
	}
	m, err := newMetrics(c, o.reg)
	if err != nil {
		return nil, err
	}
	c.m = m
	if o.tp != nil {
		c.tracer = o.tp.Tracer(traceScope)
	}
	return c, nil
}

// Ticket is an admitted request. Call Done exactly once when the request
// ends; the zero Ticket's Done does nothing. A Ticket is a value: copying it
// is cheap and allocates nothing.
type Ticket struct {
	c     *Controller
	start int64 // controller time of admission, ns
	prio  Priority
}

// Priority is the level the request was admitted at.
func (t Ticket) Priority() Priority { return t.prio }

// Done reports how the request ended (see Outcome) and frees its slot.
func (t Ticket) Done(o Outcome) {
	c := t.c
	if c == nil {
		return
	}
	now := c.nanotime()
	n := c.inflight.Add(-1)
	if n < 0 {
		panic("admission: Ticket.Done called more than once")
	}
	c.lim.done(o, t.start, now)
	c.lim.tick(now, n)
}

func (c *Controller) nanotime() int64 { return int64(c.now().Sub(c.epoch)) }

// Admit classifies req and admits or rejects it. On success the caller must
// call Ticket.Done. A rejection is a *Rejection: errors.Is(err, ErrQuota)
// for the tenant's quota (429), errors.Is(err, ErrOverloaded) otherwise
// (503). Checks, in order: the tenant's quota; the MaxInflight hard cap;
// for all but the highest level, stage 3, the shedding threshold and the
// capacity estimate; the burst limiter.
func (c *Controller) Admit(req Request) (Ticket, error) {
	rules := c.rules.Load()
	prio, srcDown, trafficDown := rules.classify(&req)
	if srcDown {
		c.m.downgraded[0].Inc()
	}
	if trafficDown {
		c.m.downgraded[1].Inc()
	}
	top := rules.Top()
	wall := c.now()
	now := int64(wall.Sub(c.epoch))
	c.thr.tick(now, top)
	c.lim.tick(now, c.inflight.Load())

	if class := req.trafficClass(); class != ClassAll {
		if ok, wait := c.quotas.allow(req.Tenant, class, wall); !ok {
			return Ticket{}, c.reject(c.Stage(), ReasonTrafficQuota, prio, max(wait, time.Millisecond))
		}
	}
	if ok, wait := c.quotas.allow(req.Tenant, ClassAll, wall); !ok {
		return Ticket{}, c.reject(c.Stage(), ReasonQuota, prio, max(wait, time.Millisecond))
	}
	n := c.inflight.Add(1) // reserve first, so that racing admits cannot overshoot
	if stage, reason, ok := c.decide(prio, top, n-1, now); !ok {
		c.inflight.Add(-1)
		retry := c.cfg.RetryAfter
		if stage == StageCollapse {
			retry = c.cfg.CollapseRetryAfter
		}
		return Ticket{}, c.reject(stage, reason, prio, retry)
	}
	c.lim.observeInflight(n)
	c.m.admitted[prio].Inc()
	return Ticket{c: c, start: now, prio: prio}, nil
}

// decide applies the stages to a request of priority prio arriving with n
// requests already in flight.
func (c *Controller) decide(prio, top Priority, n, now int64) (Stage, Reason, bool) {
	if n >= int64(c.cfg.MaxInflight) {
		return StageCollapse, ReasonHardLimit, false
	}
	eff := c.lim.eff.Load()
	collapse := c.collapsed(n)
	if prio != top {
		if collapse {
			return StageCollapse, ReasonCollapse, false
		}
		if !c.thr.pass(prio) {
			return StageShedding, ReasonThreshold, false
		}
		c.thr.eligible.Add(1)
		if n >= eff {
			c.thr.overflow.Add(1)
			return StageShedding, ReasonCapacity, false
		}
	}
	if c.burst != nil && !c.burst.allow(now, prio == top) {
		return c.stageOf(n, eff, collapse), ReasonBurst, false
	}
	return 0, 0, true
}

func (c *Controller) stageOf(n, eff int64, collapse bool) Stage {
	switch {
	case collapse:
		return StageCollapse
	case n >= eff || c.thr.load() > 0:
		return StageShedding
	}
	return StageNormal
}

func (c *Controller) reject(s Stage, r Reason, p Priority, retry time.Duration) error {
	c.m.rejected[p][r].Inc()
	return &Rejection{Stage: s, Reason: r, Priority: p, RetryAfter: retry}
}

// Stage reports the current overload stage.
func (c *Controller) Stage() Stage {
	n := c.inflight.Load()
	return c.stageOf(n, c.lim.eff.Load(), c.collapsed(n))
}

// collapsed reports the stage 3 condition. It compares with the estimate
// without the probe: a probe lowers admission for one window on purpose,
// which is not a collapse.
func (c *Controller) collapsed(n int64) bool {
	return float64(n) >= c.cfg.CollapseFactor*float64(c.lim.est.Load()) ||
		c.lim.queueDelay.Load() >= c.collapseDelayNs
}

// Stats is a snapshot of the controller's state.
type Stats struct {
	Stage      Stage
	Limit      int           // capacity estimate in requests in flight, probe applied
	Inflight   int           // admitted and not yet done
	Threshold  float64       // shedding threshold in levels (0: nothing shed)
	Baseline   time.Duration // probed no-load latency (0: not measured yet)
	QueueDelay time.Duration // last window's mean latency above the baseline
}

// Stats returns a snapshot; its fields are read one by one and may be
// mutually inconsistent by a request or two.
func (c *Controller) Stats() Stats {
	return Stats{
		Stage:      c.Stage(),
		Limit:      int(c.lim.eff.Load()),
		Inflight:   int(c.inflight.Load()),
		Threshold:  c.thr.load(),
		Baseline:   time.Duration(c.lim.baseline.Load()),
		QueueDelay: time.Duration(c.lim.queueDelay.Load()),
	}
}

// Rules returns the rule table in use.
func (c *Controller) Rules() *Rules { return c.rules.Load() }

// SetRules swaps the rule table atomically: each request is classified by
// either the old or the new table, never a mix. r must not be nil.
func (c *Controller) SetRules(r *Rules) {
	if r == nil {
		panic("admission: SetRules(nil)")
	}
	c.rules.Store(r)
}

// UpdateRules parses a rule table (see ParseRules) and swaps it in. On
// error the table in use is unchanged.
func (c *Controller) UpdateRules(data []byte) error {
	r, err := ParseRules(data)
	if err != nil {
		return err
	}
	c.SetRules(r)
	return nil
}

// SetQuotas replaces every request quota with set, as the control plane
// pushes them on each settings change. Either set is valid and applies as
// a whole, or nothing changes. Buckets keep their tokens across a change
// unless their limit rises (then they start full).
func (c *Controller) SetQuotas(set QuotaSet) error {
	if err := c.quotas.update(c.now(), func(QuotaSet) QuotaSet { return set }); err != nil {
		return fmt.Errorf("set quotas: %w", err)
	}
	return nil
}

// Quota is one tenant's quota on all its requests (class ClassAll): a
// token bucket refilled at PerSec tokens a second holding at most Burst.
type Quota struct {
	Tenant string
	PerSec float64 // > 0
	Burst  int     // ≥ 1
}

// SetTenantQuota adds or changes one tenant's quota on all its requests:
// perSec requests a second, burst at most at once. Other quotas stay.
func (c *Controller) SetTenantQuota(tenant string, perSec float64, burst int) error {
	l := Limit{PerSec: perSec, Burst: burst}
	return c.quotas.update(c.now(), func(cur QuotaSet) QuotaSet { return withTenant(cur, tenant, ClassAll, &l) })
}

// SetTenantQuotas replaces every tenant's quota on all its requests with
// qs (defaults and traffic-type quotas stay). Either all of qs is valid and
// applied, or nothing changes.
func (c *Controller) SetTenantQuotas(qs []Quota) error {
	err := c.quotas.update(c.now(), func(cur QuotaSet) QuotaSet {
		next := cur
		for t := range cur.Tenants {
			next = withTenant(next, t, ClassAll, nil)
		}
		for _, q := range qs {
			next = withTenant(next, q.Tenant, ClassAll, &Limit{PerSec: q.PerSec, Burst: q.Burst})
		}
		return next
	})
	if err != nil {
		return fmt.Errorf("set tenant quotas: %w", err)
	}
	return nil
}

// RemoveTenantQuota removes tenant's own quota on all its requests; the
// default quota, if any, then applies.
func (c *Controller) RemoveTenantQuota(tenant string) {
	_ = c.quotas.update(c.now(), func(cur QuotaSet) QuotaSet { return withTenant(cur, tenant, ClassAll, nil) })
}
