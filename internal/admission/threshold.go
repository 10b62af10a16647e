package admission

import (
	"math"
	"sync"
	"sync/atomic"
)

// Threshold controller constants. The controller is an integrator on the
// overflow: the share of requests that passed the threshold but found
// in-flight work at the estimate. It aims for a small overflow, not none:
// none would mean the threshold sheds more than it must and the backend
// runs below the estimate.
const (
	overflowTarget = 0.1 // aim: 10% of eligible requests find no room
	thresholdGain  = 1.0 // levels per ControlInterval per unit of error
	thresholdStep  = 1.0 // at most one level per ControlInterval
)

// threshold decides which levels may compete for room under the estimate.
// x in [0, top]: levels above floor(x) are eligible, levels below are shed,
// and level floor(x) is eligible with probability 1-frac(x). x = 0 sheds
// nothing; x = top sheds everything but the highest level.
type threshold struct {
	x         atomic.Uint64 // float64 bits
	eligible  atomic.Int64  // non-top requests that passed x since the last update
	overflow  atomic.Int64  // of those, rejected because in-flight work was at the estimate
	seq       atomic.Uint64 // low-discrepancy sequence for the boundary level
	nextCheck atomic.Int64  // ns of the next update

	mu       sync.Mutex // serialises updates
	interval int64      // ns
}

func (t *threshold) load() float64 { return math.Float64frombits(t.x.Load()) }

// pass reports whether priority p is eligible under the threshold.
func (t *threshold) pass(p Priority) bool {
	x := t.load()
	if x == 0 {
		return true
	}
	b := math.Floor(x)
	switch {
	case float64(p) > b:
		return true
	case float64(p) < b:
		return false
	}
	// Boundary level: admit a share 1-frac(x), spread evenly in time by a
	// Weyl sequence (golden-ratio steps) instead of a random draw, so the
	// share holds over any short run and tests are deterministic.
	u := float64(t.seq.Add(0x9E3779B97F4A7C15)>>11) / (1 << 53)
	return u >= x-b
}

// tick moves the threshold if ControlInterval has passed. It never blocks.
func (t *threshold) tick(now int64, top Priority) {
	if now < t.nextCheck.Load() || !t.mu.TryLock() {
		return
	}
	defer t.mu.Unlock()
	if now < t.nextCheck.Load() {
		return
	}
	t.nextCheck.Store(now + t.interval)
	e, o := t.eligible.Swap(0), t.overflow.Swap(0)
	x := t.load()
	var step float64
	if e == 0 {
		step = -overflowTarget * thresholdGain // nothing to learn: relax
	} else {
		step = thresholdGain * (float64(o)/float64(e) - overflowTarget)
	}
	step = max(-thresholdStep, min(thresholdStep, step))
	x = max(0, min(float64(top), x+step))
	t.x.Store(math.Float64bits(x))
}
