package admission

import (
	"testing"
	"time"
)

var simClasses = []simClass{
	{"payments", 0.05, reqPayment},
	{"reads", 0.60, reqRead},
	{"crawler", 0.35, reqCrawler},
}

func newTestController(t testing.TB, cfg Config) (*Controller, *fakeClock) {
	t.Helper()
	clk := &fakeClock{}
	c, err := New(cfg, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	c.SetRules(mustRules(testRulesText))
	return c, clk
}

// TestControllerConverges offers 10× the capacity of a 10-server backend
// and checks that the estimate settles near the backend's concurrency,
// the backend stays busy, payments all pass at near service time, and
// crawlers are shed before reads.
func TestControllerConverges(t *testing.T) {
	const servers, service = 10, 20 * time.Millisecond
	capacity := float64(servers) / service.Seconds() // 500/s
	c, clk := newTestController(t, Config{})
	s := newSim(c, clk, servers, service, 1)
	s.jitter = 0.1
	st := s.run(10*capacity, 20*time.Second, 5*time.Second, simClasses)
	s.drain()

	meanLimit := st.limitSum / st.limitN
	measured := 15.0 // seconds after warmup
	total := 0
	for _, n := range st.completed {
		total += n
	}
	goodput := float64(total) / measured
	t.Logf("mean limit %.1f, goodput %.0f/s of %.0f, admitted %v of %v, payments latency mean %v max %v, stats %+v",
		meanLimit, goodput, capacity, st.admitted, st.offered,
		st.latencySum["payments"]/time.Duration(max(1, st.completed["payments"])), st.latencyMax["payments"], c.Stats())
	if meanLimit < servers || meanLimit > 2.5*servers {
		t.Errorf("mean limit %.1f, want within [%d, %d]", meanLimit, servers, 5*servers/2)
	}
	if goodput < 0.9*capacity {
		t.Errorf("goodput %.0f/s, want ≥ 90%% of %.0f", goodput, capacity)
	}
	if st.admitted["payments"] != st.offered["payments"] {
		t.Errorf("payments admitted %d of %d, want all", st.admitted["payments"], st.offered["payments"])
	}
	if mean := st.latencySum["payments"] / time.Duration(st.completed["payments"]); mean > 2*service {
		t.Errorf("payments mean latency %v, want ≤ 2 × %v", mean, service)
	}
	readShare := float64(st.admitted["reads"]) / float64(st.offered["reads"])
	crawlShare := float64(st.admitted["crawler"]) / float64(st.offered["crawler"])
	if crawlShare > readShare/4 {
		t.Errorf("crawler admitted share %.3f, reads %.3f: want the lower level shed first", crawlShare, readShare)
	}
}

// limitSeries runs the sim in steps and returns the estimate after each.
func limitSeries(s *sim, rate float64, steps int, step time.Duration) []int {
	var out []int
	for range steps {
		s.run(rate, step, 0, simClasses)
		out = append(out, int(s.c.lim.est.Load())) // without the probe's dip
	}
	return out
}

// TestNoUpwardDriftUnderTimeouts: a share of requests hangs until a 1 s
// timeout while the rest answer quickly. Timeouts are not latency samples,
// so a limiter that only looks at latency sees a fast backend and keeps
// raising the estimate; ours must go down to the floor and stay near it,
// then climb back once the timeouts stop.
func TestNoUpwardDriftUnderTimeouts(t *testing.T) {
	for _, share := range []float64{1, 0.3, 0.05} {
		c, clk := newTestController(t, Config{})
		s := newSim(c, clk, 10, 20*time.Millisecond, 2)
		s.outcome = func(start, finish int64) (Outcome, int64) {
			if s.rng.Float64() < share {
				return Dropped, start + int64(time.Second)
			}
			return Success, finish
		}
		series := limitSeries(s, 1000, 30, time.Second)
		s.drain()
		t.Logf("timeout share %.2f: limit each second %v", share, series)
		checkNoDrift(t, share, series, c.cfg.MinLimit)
		// The timeouts stop: the estimate must climb back, not stay pinned.
		s.outcome = nil
		st := s.run(5000, 10*time.Second, 5*time.Second, simClasses)
		s.drain()
		if mean := st.limitSum / st.limitN; mean < 10 {
			t.Errorf("timeout share %.2f: mean limit %.1f after recovery, want ≥ 10", share, mean)
		}
	}
}

// checkNoDrift: over 30 s of steady timeouts the estimate trends down to
// the floor. It may step up by a little after a lucky run of windows
// without drops (at most one increase per timeout), never climb.
func checkNoDrift(t *testing.T, share float64, series []int, floor int) {
	t.Helper()
	mean := func(xs []int) float64 {
		sum := 0
		for _, x := range xs {
			sum += x
		}
		return float64(sum) / float64(len(xs))
	}
	first, last := mean(series[:10]), mean(series[20:])
	if last > first {
		t.Errorf("timeout share %.2f: mean limit %.1f in the last 10 s, %.1f in the first: drifted up", share, last, first)
	}
	for i, x := range series[20:] {
		if float64(x) > 2.5*float64(floor) {
			t.Errorf("timeout share %.2f: limit %d at %d s, want ≤ 2.5 × the floor %d", share, x, i+21, floor)
		}
	}
}

// TestProbeUnpinsLowBaseline: a spell of very fast answers (cache hits)
// sets the baseline at 2 ms; then the real 20 ms service time returns. The
// latency ratio drives the estimate to the floor, where it would stay if
// the baseline were a minimum kept forever. The probe re-measures the
// baseline and the estimate must climb back to the backend's concurrency.
func TestProbeUnpinsLowBaseline(t *testing.T) {
	const servers = 10
	c, clk := newTestController(t, Config{})
	s := newSim(c, clk, servers, 2*time.Millisecond, 3)
	s.run(2000, 2*time.Second, 0, simClasses)
	if b := c.Stats().Baseline; b > 3*time.Millisecond {
		t.Fatalf("baseline %v after fast answers, want ~2ms", b)
	}
	s.service = 20 * time.Millisecond
	series := limitSeries(s, 5000, 25, time.Second)
	st := s.run(5000, 5*time.Second, 0, simClasses)
	s.drain()
	t.Logf("limit each second %v; then %+v", series, c.Stats())
	if mean := st.limitSum / st.limitN; mean < servers {
		t.Errorf("mean limit %.1f in the last 5 s, want ≥ %d: pinned low", mean, servers)
	}
	if b := c.Stats().Baseline; b < 15*time.Millisecond || b > 30*time.Millisecond {
		t.Errorf("baseline %v, want near the 20ms service time", b)
	}
}

// TestProbeRestoresEstimate: a probe lowers admission for one window and
// then puts the estimate back; it never leaves it lower.
func TestProbeRestoresEstimate(t *testing.T) {
	c, clk := newTestController(t, Config{ProbeInterval: 2 * time.Second})
	s := newSim(c, clk, 10, 20*time.Millisecond, 4)
	s.run(5000, 3*time.Second, 0, simClasses)
	sawProbe := false
	before := c.lim.est.Load()
	for range 4000 { // 4 s in 1 ms steps
		s.run(5000, time.Millisecond, 0, simClasses)
		if c.lim.eff.Load() < c.lim.est.Load() {
			sawProbe = true
		}
	}
	s.drain()
	after := c.lim.est.Load()
	if !sawProbe {
		t.Fatal("no probe in 4 s with ProbeInterval 2 s")
	}
	if after < before*2/3 {
		t.Errorf("estimate %d after probes, %d before: probing lowered it", after, before)
	}
}

// TestLimiterSeeds repeats the convergence and drift scenarios with other
// seeds (jittered service times, random class mix, random timeouts), so
// that the tuning does not rest on one lucky sequence. A failure names its
// seed and replays exactly: the simulation runs on the fake clock.
func TestLimiterSeeds(t *testing.T) {
	for seed := uint64(2); seed <= 9; seed++ {
		c, clk := newTestController(t, Config{})
		s := newSim(c, clk, 10, 20*time.Millisecond, seed)
		s.jitter = 0.1
		st := s.run(5000, 20*time.Second, 5*time.Second, simClasses)
		s.drain()
		total := 0
		for _, n := range st.completed {
			total += n
		}
		payments := st.latencySum["payments"] / time.Duration(st.completed["payments"])
		if g := float64(total) / 15; g < 450 || payments > 40*time.Millisecond || st.limitSum/st.limitN > 25 {
			t.Errorf("seed %d: goodput %.0f/s of 500, payments mean latency %v, mean limit %.1f",
				seed, g, payments, st.limitSum/st.limitN)
		}
		for _, share := range []float64{0.3, 0.05} {
			c, clk := newTestController(t, Config{})
			s := newSim(c, clk, 10, 20*time.Millisecond, seed)
			s.outcome = func(start, finish int64) (Outcome, int64) {
				if s.rng.Float64() < share {
					return Dropped, start + int64(time.Second)
				}
				return Success, finish
			}
			checkNoDrift(t, share, limitSeries(s, 1000, 30, time.Second), c.cfg.MinLimit)
		}
	}
}
