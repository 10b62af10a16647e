package admission

import (
	"errors"
	"testing"
	"time"
)

// hold admits n requests of req and returns their tickets.
func hold(t *testing.T, c *Controller, req Request, n int) []Ticket {
	t.Helper()
	var ts []Ticket
	for i := range n {
		tk, err := c.Admit(req)
		if err != nil {
			t.Fatalf("admit %d of %d: %v", i+1, n, err)
		}
		ts = append(ts, tk)
	}
	return ts
}

func release(ts []Ticket) {
	for _, tk := range ts {
		tk.Done(Ignore)
	}
}

func rejection(t *testing.T, err error) *Rejection {
	t.Helper()
	var rej *Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("error %v, want a *Rejection", err)
	}
	return rej
}

func TestStageNormalAdmitsEverything(t *testing.T) {
	c, _ := newTestController(t, Config{InitialLimit: 20})
	ts := hold(t, c, reqCrawler, 19)
	defer release(ts)
	if s := c.Stage(); s != StageNormal {
		t.Fatalf("stage %v, want normal", s)
	}
}

func TestStageSheddingLowestFirst(t *testing.T) {
	c, clk := newTestController(t, Config{InitialLimit: 10})
	held := hold(t, c, reqRead, 10)
	// At the estimate: lower levels get no room, the top level still does.
	_, err := c.Admit(reqCrawler)
	if rej := rejection(t, err); rej.Stage != StageShedding || rej.Reason != ReasonCapacity || !errors.Is(err, ErrOverloaded) {
		t.Fatalf("crawler at the estimate: %v", err)
	}
	held = append(held, hold(t, c, reqPayment, 3)...)
	if s := c.Stage(); s != StageShedding {
		t.Fatalf("stage %v, want shedding", s)
	}
	// Sustained overflow raises the threshold past the crawlers' level:
	// they are shed even when room frees up, while reads still get it.
	for range 20 {
		clk.Advance(10 * time.Millisecond)
		for range 5 {
			_, _ = c.Admit(reqRead) // load only: admitted or not, the estimate moves
			_, _ = c.Admit(reqCrawler)
		}
	}
	if x := c.Stats().Threshold; x < 1 {
		t.Fatalf("threshold %.2f after sustained overflow, want ≥ 1", x)
	}
	// Room frees up (13 in flight, 5 leave, estimate 10: 2 slots). Reads
	// take it all; crawlers, the lowest level, get none of it while reads
	// want it.
	release(held[:5])
	held = held[5:]
	room := c.Stats().Limit - c.Stats().Inflight
	reads, crawlers := 0, 0
	for range 40 {
		clk.Advance(10 * time.Millisecond)
		if tk, err := c.Admit(reqRead); err == nil {
			reads++
			held = append(held, tk)
		}
		if tk, err := c.Admit(reqCrawler); err == nil {
			crawlers++
			held = append(held, tk)
		}
	}
	if reads != room || crawlers != 0 {
		t.Fatalf("into %d free slots: %d reads, %d crawlers admitted; want %d and 0", room, reads, crawlers, room)
	}
	release(held)
	// With the overload gone the threshold relaxes back to 0.
	for range 100 {
		clk.Advance(10 * time.Millisecond)
		tk, err := c.Admit(reqRead)
		if err == nil {
			tk.Done(Ignore)
		}
	}
	if st := c.Stats(); st.Threshold != 0 || st.Stage != StageNormal {
		t.Fatalf("after the overload: %+v, want threshold 0 and stage normal", st)
	}
}

func TestStageCollapse(t *testing.T) {
	t.Run("in-flight far past the estimate", func(t *testing.T) {
		c, _ := newTestController(t, Config{InitialLimit: 10})
		held := hold(t, c, reqPayment, 20) // the top level is never shed
		defer release(held)
		if s := c.Stage(); s != StageCollapse {
			t.Fatalf("stage %v with 20 in flight for an estimate of 10, want collapse", s)
		}
		_, err := c.Admit(reqRead)
		rej := rejection(t, err)
		if rej.Stage != StageCollapse || rej.Reason != ReasonCollapse || rej.RetryAfter != 5*time.Second {
			t.Fatalf("read in collapse: %+v", rej)
		}
		if _, err := c.Admit(reqPayment); err != nil {
			t.Fatalf("payment in collapse: %v", err)
		}
	})
	t.Run("queueing delay", func(t *testing.T) {
		c, clk := newTestController(t, Config{InitialLimit: 40})
		s := newSim(c, clk, 10, 20*time.Millisecond, 5)
		s.run(400, 3*time.Second, 0, simClasses) // under capacity: learns the baseline
		if st := c.Stats(); st.Stage != StageNormal {
			t.Fatalf("before the stall: %+v", st)
		}
		s.service = 2 * time.Second // the database stalls
		s.run(400, 3*time.Second, 0, simClasses)
		if st := c.Stats(); st.Stage != StageCollapse {
			t.Fatalf("during the stall: %+v, want collapse", st)
		}
		_, err := c.Admit(reqRead)
		if rej := rejection(t, err); rej.Reason != ReasonCollapse {
			t.Fatalf("read during the stall: %v", err)
		}
		// Stall over: the controller leaves stage 3 by itself.
		s.service = 20 * time.Millisecond
		s.run(400, 20*time.Second, 0, simClasses)
		s.drain()
		if st := c.Stats(); st.Stage != StageNormal {
			t.Fatalf("after the stall: %+v, want normal", st)
		}
	})
}

func TestHardLimit(t *testing.T) {
	c, _ := newTestController(t, Config{MaxLimit: 8, InitialLimit: 8, MaxInflight: 8, MinLimit: 2})
	held := hold(t, c, reqPayment, 8)
	defer release(held)
	_, err := c.Admit(reqPayment)
	if rej := rejection(t, err); rej.Reason != ReasonHardLimit || !errors.Is(err, ErrOverloaded) {
		t.Fatalf("payment past MaxInflight: %v", err)
	}
}

func TestTenantQuota(t *testing.T) {
	c, clk := newTestController(t, Config{})
	if err := c.SetTenantQuota("t1", 10, 2); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		tk, err := c.Admit(reqRead)
		if err != nil {
			t.Fatal(err)
		}
		tk.Done(Success)
	}
	_, err := c.Admit(reqPayment) // quotas bind every level
	rej := rejection(t, err)
	if !errors.Is(err, ErrQuota) || errors.Is(err, ErrOverloaded) || rej.Status() != 429 {
		t.Fatalf("over quota: %v (status %d)", err, rej.Status())
	}
	if rej.RetryAfter <= 0 || rej.RetryAfter > 100*time.Millisecond {
		t.Fatalf("retry after %v, want ≤ 100ms (10 a second)", rej.RetryAfter)
	}
	if _, err := c.Admit(Request{Tenant: "t2", Route: "reads"}); err != nil {
		t.Fatalf("other tenant: %v", err)
	}
	clk.Advance(100 * time.Millisecond)
	if _, err := c.Admit(reqRead); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	// Invalid quotas change nothing.
	if err := c.SetTenantQuotas([]Quota{{Tenant: "t3", PerSec: 1, Burst: 1}, {Tenant: "t4", PerSec: -1, Burst: 1}}); err == nil {
		t.Fatal("negative rate accepted")
	}
	if _, err := c.Admit(reqRead); !errors.Is(err, ErrQuota) {
		t.Fatalf("t1 quota lost after a failed update: %v", err)
	}
	// Replace: t1 has no quota any more.
	if err := c.SetTenantQuotas([]Quota{{Tenant: "t3", PerSec: 1, Burst: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admit(reqRead); err != nil {
		t.Fatalf("t1 after its quota was removed: %v", err)
	}
}

// TestQuotaBound: MaxTenantQuotas bounds the buckets held, never which
// quotas apply: with room for 2 buckets, 3 tenants' quotas all hold (a
// full table evicts; it once refused the third quota, which then silently
// did not apply).
func TestQuotaBound(t *testing.T) {
	c, _ := newTestController(t, Config{MaxTenantQuotas: 2})
	if err := c.SetTenantQuotas([]Quota{{"a", minRateTest, 1}, {"b", minRateTest, 1}, {"c", minRateTest, 1}}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []string{"a", "b", "c"} {
		req := reqRead
		req.Tenant = tn
		tk, err := c.Admit(req)
		if err != nil {
			t.Fatalf("tenant %s first request: %v", tn, err)
		}
		tk.Done(Success)
		if _, err := c.Admit(req); !errors.Is(err, ErrQuota) {
			t.Fatalf("tenant %s second request: %v, want its quota", tn, err)
		}
		if n, _ := c.quotas.sizes(); n > 2 {
			t.Fatalf("%d buckets held, MaxTenantQuotas 2", n)
		}
	}
	if _, evicted := c.quotas.sizes(); evicted == 0 {
		t.Fatal("a third tenant's bucket fitted in a table of 2 without eviction")
	}
}

// minRateTest is a rate that refills nothing within a test.
const minRateTest = 1e-6

// TestQuotaSetDefaultsOverridesAndTraffic: the default quota applies to
// tenants without an override, an override to its tenant only, traffic
// quotas only to requests whose key is entitled to the claim, and never to
// the admin key; a raised limit applies at once with a full bucket.
func TestQuotaSetDefaultsOverridesAndTraffic(t *testing.T) {
	c, _ := newTestController(t, Config{})
	set := QuotaSet{
		Default: map[string]Limit{ClassAll: {PerSec: minRateTest, Burst: 2}, ClassCrawler: {PerSec: minRateTest, Burst: 1}},
		Tenants: map[string]map[string]Limit{"big": {ClassAll: {PerSec: minRateTest, Burst: 4}}},
	}
	if err := c.SetQuotas(set); err != nil {
		t.Fatal(err)
	}
	admitN := func(req Request) (n int) {
		for range 10 {
			tk, err := c.Admit(req)
			if err != nil {
				return n
			}
			tk.Done(Success)
			n++
		}
		return n
	}
	req := func(tn, traffic string, entitled ...string) Request {
		r := reqRead
		r.Tenant, r.Traffic = tn, traffic
		r.Entitled = Entitlements{Traffic: entitled, DefaultTraffic: "normal"}
		return r
	}
	if n := admitN(req("small", "")); n != 2 {
		t.Fatalf("default quota: %d admitted, want 2", n)
	}
	if n := admitN(req("big", "")); n != 4 {
		t.Fatalf("override: %d admitted, want 4", n)
	}
	if n := admitN(req("crawly", "crawler", "crawler")); n != 1 {
		t.Fatalf("entitled crawler: %d admitted, want 1", n)
	}
	_, err := c.Admit(req("crawly", "crawler", "crawler"))
	var rej *Rejection
	if !errors.As(err, &rej) || rej.Reason != ReasonTrafficQuota || !errors.Is(err, ErrQuota) || rej.Problem().Extensions["stage"] != "quota" {
		t.Fatalf("crawler over its quota: %v", err)
	}
	if n := admitN(req("sneaky", "crawler")); n != 2 {
		t.Fatalf("unentitled crawler claim: %d admitted, want the default quota's 2", n)
	}
	if n := admitN(req("*admin", "")); n != 10 {
		t.Fatalf("admin key: %d admitted, want no quota", n)
	}
	set.Default[ClassAll] = Limit{PerSec: minRateTest, Burst: 3}
	if err := c.SetQuotas(set); err != nil {
		t.Fatal(err)
	}
	if n := admitN(req("small", "")); n != 3 {
		t.Fatalf("raised default: %d admitted, want a full bucket of 3", n)
	}
}

func TestBurstLimiterInController(t *testing.T) {
	c, clk := newTestController(t, Config{BurstLimit: 5, InitialLimit: 100})
	for i := range 5 {
		tk, err := c.Admit(reqRead)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		tk.Done(Success)
	}
	_, err := c.Admit(reqRead)
	if rej := rejection(t, err); rej.Reason != ReasonBurst {
		t.Fatalf("6th read in 100ms: %v", err)
	}
	if _, err := c.Admit(reqPayment); err != nil {
		t.Fatalf("top level past the burst limit: %v", err)
	}
	clk.Advance(100 * time.Millisecond)
	if _, err := c.Admit(reqRead); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{
		{MinLimit: 10, MaxLimit: 5},
		{MaxLimit: 100, MaxInflight: 50},
		{DropBackoff: 1.5},
		{CollapseFactor: 0.5},
		{Window: time.Second, MaxWindow: 100 * time.Millisecond},
		{BurstLimit: -1},
		{BurstWindow: time.Millisecond},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	if _, err := New(Config{}); err != nil {
		t.Fatalf("zero config: %v", err)
	}
}

func TestDoneTwicePanics(t *testing.T) {
	c, _ := newTestController(t, Config{})
	tk, _ := c.Admit(reqRead)
	tk.Done(Success)
	defer func() {
		if recover() == nil {
			t.Fatal("second Done did not panic")
		}
	}()
	tk.Done(Success)
}
