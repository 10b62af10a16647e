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
			c.Admit(reqRead)
			c.Admit(reqCrawler)
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

func TestQuotaBound(t *testing.T) {
	c, _ := newTestController(t, Config{MaxTenantQuotas: 2})
	if err := c.SetTenantQuotas([]Quota{{"a", 1, 1}, {"b", 1, 1}, {"c", 1, 1}}); err == nil {
		t.Fatal("3 quotas accepted with MaxTenantQuotas 2")
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
