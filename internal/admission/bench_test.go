package admission

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func benchController(tb testing.TB) *Controller {
	tb.Helper()
	c, err := New(Config{MaxLimit: 1 << 20, InitialLimit: 1 << 20, MaxInflight: 1 << 20},
		WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		tb.Fatal(err)
	}
	c.SetRules(mustRules(testRulesText))
	if err := c.SetTenantQuota("t1", 1e12, 1<<30); err != nil {
		tb.Fatal(err)
	}
	return c
}

var benchReq = Request{
	Tenant: "t1", Route: "reads", Client: "sdk", Source: "app", Traffic: "normal",
	Entitled: Entitlements{Sources: []string{"web", "app"}, Traffic: []string{"normal", "batch"}},
}

// TestAdmitAcceptPathAllocs: Admit and Done of an accepted request,
// through classification, quota and the estimate, allocate nothing.
func TestAdmitAcceptPathAllocs(t *testing.T) {
	c := benchController(t)
	allocs := testing.AllocsPerRun(1000, func() {
		tk, err := c.Admit(benchReq)
		if err != nil {
			t.Fatal(err)
		}
		tk.Done(Success)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per Admit+Done, want 0", allocs)
	}
}

// BenchmarkAdmit is the per-request cost of the admission decision on the
// accept path: classify (5 rule lookups, 2 entitlement checks), quota
// token bucket, stage decision, and Done.
func BenchmarkAdmit(b *testing.B) {
	c := benchController(b)
	b.ReportAllocs()
	for b.Loop() {
		tk, err := c.Admit(benchReq)
		if err != nil {
			b.Fatal(err)
		}
		tk.Done(Success)
	}
}

func BenchmarkAdmitParallel(b *testing.B) {
	c := benchController(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tk, err := c.Admit(benchReq)
			if err != nil {
				b.Fatal(err)
			}
			tk.Done(Success)
		}
	})
}

// BenchmarkAdmitReject is the cost of turning a request away (it
// allocates the *Rejection).
func BenchmarkAdmitReject(b *testing.B) {
	c := benchController(b)
	c.lim.set(c.cfg.MinLimit)
	var held []Ticket
	for range c.cfg.MinLimit {
		tk, _ := c.Admit(benchReq)
		held = append(held, tk)
	}
	defer release(held)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Admit(benchReq); err == nil {
			b.Fatal("admitted")
		}
	}
}

func BenchmarkMiddleware(b *testing.B) {
	c := benchController(b)
	h := c.Middleware(func(*http.Request) Request { return benchReq },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest("GET", "/reads", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}
