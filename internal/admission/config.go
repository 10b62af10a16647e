package admission

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes a Controller. Every field documents its unit, its default and
// what zero means; zero always means "use the default", so Config{} is a
// working configuration. New calls EnsureDefaults and Validate.
type Config struct {
	// MinLimit is the floor of the capacity estimate, in requests in
	// flight. Default 4. The estimate never goes below it, however bad
	// latency gets, so a recovering backend always sees some traffic.
	MinLimit int
	// MaxLimit is the ceiling of the capacity estimate, in requests in
	// flight. Default 1,000.
	MaxLimit int
	// InitialLimit is the estimate before any latency is measured.
	// Default MinLimit × 4, clamped to [MinLimit, MaxLimit].
	InitialLimit int
	// MaxInflight is the hard cap on requests in flight for every level,
	// the highest included: past it everything is rejected with reason
	// hard_limit. Default 2 × MaxLimit. Must be ≥ MaxLimit.
	MaxInflight int

	// Tolerance is how far the mean latency of a window may rise above the
	// baseline (no-load) latency before the estimate is lowered, as a
	// fraction: 0.2 allows +20%. Default 0.2.
	Tolerance float64
	// Window is the shortest measurement window of the estimate. A window
	// also lasts at least one mean latency and holds at least
	// MinWindowSamples successes, unless MaxWindow passes first.
	// Default 100 ms.
	Window time.Duration
	// MaxWindow closes a window however few samples it holds. Default 1 s.
	MaxWindow time.Duration
	// MinWindowSamples is the number of successful completions a window
	// needs before its latency moves the estimate or the baseline.
	// Default 20.
	MinWindowSamples int
	// DropTolerance is the fraction of completions of a window that may
	// be Dropped (timeouts, backend overload) before the estimate is cut
	// by DropBackoff. Default 0.01. A window over it never raises the
	// estimate, however good its latency looks.
	DropTolerance float64
	// DropBackoff multiplies the estimate after a window with too many
	// drops. Default 0.8. Must be in (0, 1).
	DropBackoff float64
	// ProbeInterval is how often the baseline latency is measured afresh,
	// during one window at ProbeFraction of the estimate. Default 10 s.
	ProbeInterval time.Duration
	// ProbeFraction is the share of the estimate admitted during a probe
	// window. Default 0.25: the probe must bring in-flight work below the
	// backend's real concurrency even when the estimate is 2× too high and
	// the highest level (never shed) holds part of it, or it measures
	// queueing instead of the baseline. One 100 ms window at 25% every 10 s
	// costs ≤ 0.75% of throughput.
	ProbeFraction float64

	// ControlInterval is how often the shedding threshold is moved.
	// Default 10 ms.
	ControlInterval time.Duration
	// CollapseFactor: in-flight work at this multiple of the estimate
	// starts stage 3. Default 2. Must be > 1.
	CollapseFactor float64
	// CollapseQueueDelay: a window whose mean latency exceeds the baseline
	// by this much starts stage 3. Default 500 ms.
	CollapseQueueDelay time.Duration

	// BurstLimit is the number of requests admitted in any sliding
	// BurstWindow, the highest level excepted (it is counted, not limited).
	// Zero disables the burst limiter: a rate that is safe depends on the
	// backend's service time, which only the operator knows, and the
	// concurrency estimate and MaxInflight bound the work without it.
	BurstLimit int
	// BurstWindow is the span of the burst limiter, counted in 10 buckets.
	// Default 100 ms.
	BurstWindow time.Duration

	// RetryAfter is the Retry-After of a stage 2 or burst rejection.
	// Default 1 s (the header has whole seconds).
	RetryAfter time.Duration
	// CollapseRetryAfter is the Retry-After of a stage 3 or hard_limit
	// rejection. Default 5 s.
	CollapseRetryAfter time.Duration
	// MaxTenantQuotas bounds the quota buckets held, one per tenant and
	// class seen; a full table evicts an arbitrary eighth, whose tenants get
	// a full bucket on their next request. Default 100,000 (a limiter is
	// ~100 B, so ~10 MiB).
	MaxTenantQuotas int
}

// EnsureDefaults returns a copy of c with every zero field set to its
// default.
func (c Config) EnsureDefaults() Config {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defD := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	defF := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.MinLimit, 4)
	def(&c.MaxLimit, 1000)
	def(&c.InitialLimit, min(max(c.MinLimit*4, c.MinLimit), c.MaxLimit))
	def(&c.MaxInflight, 2*c.MaxLimit)
	defF(&c.Tolerance, 0.2)
	defD(&c.Window, 100*time.Millisecond)
	defD(&c.MaxWindow, time.Second)
	def(&c.MinWindowSamples, 20)
	defF(&c.DropTolerance, 0.01)
	defF(&c.DropBackoff, 0.8)
	defD(&c.ProbeInterval, 10*time.Second)
	defF(&c.ProbeFraction, 0.25)
	defD(&c.ControlInterval, 10*time.Millisecond)
	defF(&c.CollapseFactor, 2)
	defD(&c.CollapseQueueDelay, 500*time.Millisecond)
	defD(&c.BurstWindow, 100*time.Millisecond)
	defD(&c.RetryAfter, time.Second)
	defD(&c.CollapseRetryAfter, 5*time.Second)
	def(&c.MaxTenantQuotas, 100_000)
	return c
}

// Validate reports every field that is out of range or contradicts another.
// Call it on a Config after EnsureDefaults.
func (c Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.MinLimit < 1, "MinLimit %d: want ≥ 1", c.MinLimit)
	check(c.MaxLimit < c.MinLimit, "MaxLimit %d: want ≥ MinLimit %d", c.MaxLimit, c.MinLimit)
	check(c.InitialLimit < c.MinLimit || c.InitialLimit > c.MaxLimit,
		"InitialLimit %d: want within [MinLimit %d, MaxLimit %d]", c.InitialLimit, c.MinLimit, c.MaxLimit)
	check(c.MaxInflight < c.MaxLimit, "MaxInflight %d: want ≥ MaxLimit %d", c.MaxInflight, c.MaxLimit)
	check(c.Tolerance < 0 || c.Tolerance > 10, "Tolerance %g: want within [0, 10]", c.Tolerance)
	check(c.Window <= 0, "Window %v: want > 0", c.Window)
	check(c.MaxWindow < c.Window, "MaxWindow %v: want ≥ Window %v", c.MaxWindow, c.Window)
	check(c.MinWindowSamples < 1, "MinWindowSamples %d: want ≥ 1", c.MinWindowSamples)
	check(c.DropTolerance < 0 || c.DropTolerance >= 1, "DropTolerance %g: want within [0, 1)", c.DropTolerance)
	check(c.DropBackoff <= 0 || c.DropBackoff >= 1, "DropBackoff %g: want within (0, 1)", c.DropBackoff)
	check(c.ProbeInterval < c.MaxWindow, "ProbeInterval %v: want ≥ MaxWindow %v", c.ProbeInterval, c.MaxWindow)
	check(c.ProbeFraction <= 0 || c.ProbeFraction >= 1, "ProbeFraction %g: want within (0, 1)", c.ProbeFraction)
	check(c.ControlInterval <= 0, "ControlInterval %v: want > 0", c.ControlInterval)
	check(c.CollapseFactor <= 1, "CollapseFactor %g: want > 1", c.CollapseFactor)
	check(c.CollapseQueueDelay <= 0, "CollapseQueueDelay %v: want > 0", c.CollapseQueueDelay)
	check(c.BurstLimit < 0, "BurstLimit %d: want ≥ 0", c.BurstLimit)
	check(c.BurstWindow < burstBuckets*time.Millisecond, "BurstWindow %v: want ≥ %v", c.BurstWindow, burstBuckets*time.Millisecond)
	check(c.RetryAfter <= 0, "RetryAfter %v: want > 0", c.RetryAfter)
	check(c.CollapseRetryAfter <= 0, "CollapseRetryAfter %v: want > 0", c.CollapseRetryAfter)
	check(c.MaxTenantQuotas < 0, "MaxTenantQuotas %d: want ≥ 0", c.MaxTenantQuotas)
	if len(errs) > 0 {
		return fmt.Errorf("admission config: %w", errors.Join(errs...))
	}
	return nil
}
