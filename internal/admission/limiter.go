package admission

import (
	"math"
	"sync"
	"sync/atomic"
)

// limiter is the adaptive capacity estimate: a concurrency limit moved by
// the latency of completed requests against a probed baseline. See doc.go
// for the algorithm and why it neither drifts up nor pins itself low.
//
// The hot path touches only atomics: Admit reads eff and raises maxSeen,
// Done adds to the window accumulators. Whoever first sees that the window
// is due (now ≥ nextCheck) and wins mu.TryLock closes it; everybody else
// carries on without waiting.
type limiter struct {
	cfg *Config

	eff        atomic.Int64 // effective limit, requests in flight (probe applied)
	est        atomic.Int64 // the estimate without the probe, for the collapse test
	baseline   atomic.Int64 // no-load latency, ns; 0 until measured
	queueDelay atomic.Int64 // last window's mean latency above baseline, ns
	nextCheck  atomic.Int64 // earliest ns at which the window may close
	sampleFrom atomic.Int64 // successes admitted before this ns are not sampled
	dropFrom   atomic.Int64 // drops admitted before this ns are not counted

	// window accumulators, swapped to zero when the window closes
	samples atomic.Int64 // Success completions
	sumNs   atomic.Int64 // their summed latency
	drops   atomic.Int64 // Dropped completions
	dropMax atomic.Int64 // longest latency of a Dropped completion, ns
	maxSeen atomic.Int64 // highest in-flight count seen at admission

	mu          sync.Mutex
	limit       float64 // guarded by mu; the estimate, in [MinLimit, MaxLimit]
	windowStart int64   // guarded by mu
	lastRTT     int64   // guarded by mu; mean latency of the last judged window, ns
	probing     bool    // guarded by mu; the current window is a probe
	preProbe    float64 // guarded by mu; the estimate to restore after the probe
	nextProbe   int64   // guarded by mu; ns of the next probe
	dropDelay   int64   // guarded by mu; latency of the last drops seen, ns
	freezeUntil int64   // guarded by mu; no increase before this ns
	dropSeenAt  int64   // guarded by mu; ns of the last window with drops
}

func newLimiter(cfg *Config, now int64) *limiter {
	l := &limiter{cfg: cfg, limit: float64(cfg.InitialLimit), windowStart: now}
	// The first probe comes after one MaxWindow: the first windows of a
	// cold start under load measure queueing, not the baseline.
	l.nextProbe = now + int64(cfg.MaxWindow)
	l.nextCheck.Store(now + int64(cfg.Window))
	l.publishLocked()
	return l
}

// observeInflight records n requests in flight for the utilization check.
func (l *limiter) observeInflight(n int64) {
	for {
		m := l.maxSeen.Load()
		if n <= m || l.maxSeen.CompareAndSwap(m, n) {
			return
		}
	}
}

// done records one completion of a request admitted at start.
//
// A completion admitted before the last cut says nothing about the new
// estimate and is skipped. Latency and drops have separate cursors: a cut
// for latency must not hide the drops that arrive a timeout later, or
// frequent small cuts would hide every timeout.
func (l *limiter) done(o Outcome, start, now int64) {
	switch o {
	case Success:
		if start < l.sampleFrom.Load() {
			return
		}
		l.samples.Add(1)
		l.sumNs.Add(now - start)
	case Dropped:
		if start < l.dropFrom.Load() {
			return
		}
		l.drops.Add(1)
		for lat := now - start; ; {
			m := l.dropMax.Load()
			if lat <= m || l.dropMax.CompareAndSwap(m, lat) {
				break
			}
		}
	}
}

// tick closes the window if it is due. It never blocks.
func (l *limiter) tick(now int64, inflight int64) {
	if now < l.nextCheck.Load() || !l.mu.TryLock() {
		return
	}
	defer l.mu.Unlock()
	elapsed := now - l.windowStart
	minLen := min(max(int64(l.cfg.Window), l.lastRTT), int64(l.cfg.MaxWindow))
	s := l.samples.Load()
	if elapsed < minLen || (s < int64(l.cfg.MinWindowSamples) && elapsed < int64(l.cfg.MaxWindow)) {
		// Not yet: look again after a tenth of a window rather than on
		// every call.
		l.nextCheck.Store(now + max(int64(l.cfg.Window)/10, minLen-elapsed))
		return
	}
	s, sum, d := l.samples.Swap(0), l.sumNs.Swap(0), l.drops.Swap(0)
	if dm := l.dropMax.Swap(0); dm > 0 {
		l.dropDelay = dm
	}
	seen := l.maxSeen.Swap(inflight)
	l.windowStart = now
	l.nextCheck.Store(now + minLen)
	l.updateLocked(now, s, sum, d, seen)
	l.publishLocked()
}

// updateLocked applies one closed window: s successes of summed latency
// sum, d drops, seen the highest in-flight count.
func (l *limiter) updateLocked(now, s, sum, d, seen int64) {
	cfg := l.cfg
	// A drop shows up one drop delay (for a timeout: the timeout) after
	// its request was admitted, long after the successes of the same
	// requests. Until the drops of the current estimate are in, a window
	// without drops proves nothing: no increase for that long after a
	// drop, and while drops are recent (10 drop delays), at most one
	// increase per drop delay, so that a lucky run of clean windows cannot
	// compound. Under steady timeouts the estimate can therefore only
	// fall; the price is that a steady trickle of timeouts also holds it
	// from rising much until the trickle stops.
	feedback := l.dropDelay + min(max(int64(cfg.Window), l.lastRTT), int64(cfg.MaxWindow))
	if d > 0 {
		l.dropSeenAt = now
		l.freezeUntil = max(l.freezeUntil, now+feedback)
	}
	if d > 0 && float64(d) > cfg.DropTolerance*float64(s+d) {
		// Congestion: cut, whatever latency says. Timeouts are not latency
		// samples, so a backend that times out steadily could otherwise look
		// fast (only the quick answers are measured) and be fed more.
		l.decreaseLocked(now, cfg.DropBackoff)
		l.dropFrom.Store(now)
		return
	}
	if s == 0 {
		l.queueDelay.Store(0) // no evidence of queueing left; stage 3 must not stick
		l.endProbeLocked(now)
		return
	}
	rtt := sum / s
	small := s < int64(cfg.MinWindowSamples)
	if l.probing {
		// The probe ran at ProbeFraction of the estimate and sampled only
		// requests admitted during it: its latency is the baseline now,
		// even if higher than before, so an old too-low baseline cannot pin
		// the estimate at the floor. The estimate itself goes back to what
		// it was: probing never lowers it.
		l.baseline.Store(rtt)
		l.queueDelay.Store(0)
		l.lastRTT = rtt
		l.endProbeLocked(now)
		return
	}
	l.lastRTT = rtt
	l.judgeLocked(now, rtt, small, seen, feedback)
}

// judgeLocked moves the estimate by the latency rtt of a window that saw
// at most DropTolerance drops, or starts a probe when one is due.
func (l *limiter) judgeLocked(now, rtt int64, small bool, seen, feedback int64) {
	cfg := l.cfg
	base := l.baseline.Load()
	if base == 0 || (rtt < base && !small) {
		base = rtt
		l.baseline.Store(base)
	}
	l.queueDelay.Store(max(0, rtt-base))
	if now >= l.nextProbe {
		// Sample only requests admitted one mean latency into the probe:
		// earlier ones queue behind the work admitted under the full
		// estimate and would measure its queue, not the baseline.
		l.probing, l.preProbe = true, l.limit
		l.sampleFrom.Store(now + rtt)
		return
	}
	ratio := float64(base) * (1 + cfg.Tolerance) / float64(rtt)
	switch {
	case ratio < 1:
		l.decreaseLocked(now, max(0.5, ratio))
	case now < l.freezeUntil || float64(seen)*2 < l.limit:
		// Hold: drops of the current estimate may still be due (above),
		// and a window that used less than half the estimate (application
		// limited) proves nothing about a larger one.
	default:
		l.limit = min(float64(cfg.MaxLimit), l.limit+math.Sqrt(l.limit))
		if l.dropSeenAt > 0 && now-l.dropSeenAt < 10*l.dropDelay {
			l.freezeUntil = now + feedback
		}
	}
}

func (l *limiter) decreaseLocked(now int64, factor float64) {
	if l.probing {
		l.limit = l.preProbe
		l.probing = false
		l.nextProbe = now + int64(l.cfg.ProbeInterval)
	}
	l.limit = max(float64(l.cfg.MinLimit), l.limit*factor)
	// One cut per feedback delay: completions of requests admitted under
	// the old estimate would otherwise cut it again and again.
	l.sampleFrom.Store(now)
}

func (l *limiter) endProbeLocked(now int64) {
	if !l.probing {
		return
	}
	l.probing = false
	l.limit = l.preProbe
	l.nextProbe = now + int64(l.cfg.ProbeInterval)
}

func (l *limiter) publishLocked() {
	eff := l.limit
	if l.probing {
		eff = max(float64(l.cfg.MinLimit), eff*l.cfg.ProbeFraction)
	}
	l.eff.Store(int64(eff))
	l.est.Store(int64(l.limit))
}

// set overrides the estimate (tests, an operator pinning it).
func (l *limiter) set(limit int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limit = float64(min(max(limit, l.cfg.MinLimit), l.cfg.MaxLimit))
	l.publishLocked()
}
