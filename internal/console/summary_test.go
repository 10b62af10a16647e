package console

import (
	"context"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h      hist
		q      float64
		want   float64
		wantOK bool
	}{
		{"empty", hist{bounds: []float64{1}, cum: []float64{0}}, 0.99, 0, false},
		{"first bucket", hist{bounds: []float64{0.1, 0.2, 0.4}, cum: []float64{10, 20, 20}, count: 20}, 0.5, 0.1, true},
		{"interpolated", hist{bounds: []float64{0.1, 0.2, 0.4}, cum: []float64{10, 20, 20}, count: 20}, 0.99, 0.198, true},
		{"overflow answers the highest bound", hist{bounds: []float64{0.1, 0.2, 0.4}, cum: []float64{10, 20, 20}, count: 30}, 0.99, 0.4, true},
		{"explicit +Inf bucket", hist{bounds: []float64{1, math.Inf(1)}, cum: []float64{1, 10}, count: 10}, 0.9, 1, true},
	} {
		got, ok := tc.h.quantile(tc.q)
		if ok != tc.wantOK || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: quantile(%v) = %v, %v; want %v, %v", tc.name, tc.q, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestHistDeltaAfterReset(t *testing.T) {
	then := hist{bounds: []float64{1}, cum: []float64{50}, count: 50}
	now := hist{bounds: []float64{1}, cum: []float64{3}, count: 3}
	if d := now.delta(then); d.count != 3 || d.cum[0] != 3 {
		t.Fatalf("delta after a reset = %+v, want the new histogram alone", d)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestSummaryFromRegistry: the summary's rates, p99 by route class, task
// rows (lag, drain, ETA, live rate) and export series come from what the
// registry holds between two gathers.
func TestSummaryFromRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: mHTTPRequests}, []string{"method", "route", "status"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: mHTTPSeconds, Buckets: []float64{0.01, 0.1, 1}}, []string{"route"})
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mTaskLagEvents}, []string{"task", "tenant", "partition"})
	lagSecs := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mTaskLagSeconds}, []string{"task", "tenant", "partition"})
	queued := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_export_jobs_queued"}, []string{"pool"})
	reg.MustRegister(reqs, dur, lag, lagSecs, queued)
	queued.WithLabelValues("huge").Set(2)
	lag.WithLabelValues("recompute", "acme", "0").Set(100)
	lagSecs.WithLabelValues("recompute", "acme", "0").Set(30)

	creg := control.NewRegistry()
	watcher := control.NewWatcher(nil, creg, nil, nil) // defaults only: never synced
	clk := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	c, err := New(Config{
		Authenticate: func(context.Context, string) (tenant.Principal, error) {
			return tenant.Principal{}, tenant.ErrUnauthenticated
		},
		API: unusedAPI{}, Gatherer: reg, Snapshot: watcher.Current, Registry: creg, Now: clk.Now,
		RouteClass: func(p string) string {
			if strings.Contains(p, "/v1/transactions") {
				return "payments"
			}
			return "ops"
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if first.Ledger.TransactionsPerS != nil || first.WindowSeconds != 0 {
		t.Fatalf("rates before a second gather: %+v", first)
	}
	for range 40 {
		reqs.WithLabelValues("POST", "POST /v1/transactions", "201").Inc()
		dur.WithLabelValues("POST /v1/transactions").Observe(0.05)
	}
	for range 10 {
		reqs.WithLabelValues("POST", "POST /v1/transactions", "429").Inc()
	}
	lag.WithLabelValues("recompute", "acme", "0").Set(80)
	clk.add(2 * time.Second)
	s, err := c.summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.HTTP.Classes) != 1 || s.HTTP.Classes[0].Class != "payments" || *s.HTTP.Classes[0].PerSec != 25 ||
		*s.HTTP.Classes[0].ShedPerS != 5 || *s.HTTP.Classes[0].P99Ms < 10 || *s.HTTP.Classes[0].P99Ms > 100 {
		t.Fatalf("payments row: %+v", s.HTTP.Classes)
	}
	if !s.Tasks.Reported || len(s.Tasks.Rows) != 1 {
		t.Fatalf("task rows: %+v", s.Tasks)
	}
	r := s.Tasks.Rows[0]
	if r.Tenant != "acme" || r.Partition != "0" || r.Rate != 10 || r.Paused || *r.LagEvents != 80 || *r.LagSeconds != 30 ||
		*r.DrainPerSec != 10 || *r.ETASeconds != 8 {
		t.Fatalf("task row: %+v (drain %v, eta %v)", r, *r.DrainPerSec, *r.ETASeconds)
	}
	// A growing lag is not draining: no ETA.
	lag.WithLabelValues("recompute", "acme", "0").Set(120)
	clk.add(2 * time.Second)
	if s, _ := c.summary(context.Background()); s.Tasks.Rows[0].ETASeconds != nil || *s.Tasks.Rows[0].DrainPerSec >= 0 {
		t.Fatalf("growing lag: %+v", s.Tasks.Rows[0])
	}
	if !s.Exports.Reported || len(s.Exports.Series) != 1 || s.Exports.Series[0].Labels != "pool=huge" || s.Exports.Series[0].Value != 2 {
		t.Fatalf("exports: %+v", s.Exports)
	}
	if s.CDC.Running || s.Admission.Stage != nil || len(s.Gaps) != 3 {
		t.Fatalf("absent parts should be reported as gaps: cdc %+v stage %v gaps %v", s.CDC, s.Admission.Stage, s.Gaps)
	}
	// Without lag metrics the rows are tenants × tasks from the settings.
	if rows := c.taskStats(sample{at: clk.Now(), fams: families{}}, nil, []string{"acme", "globex"}).Rows; len(rows) != 2*len(c.taskNames()) ||
		rows[0].Partition != "all" || rows[0].LagEvents != nil {
		t.Fatalf("rows without lag metrics: %+v", rows)
	}
}

// unusedAPI is an API that is never called in these tests.
type unusedAPI struct{}

func (unusedAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	panic("the summary does not call the admin API")
}

// TestSamplerWindow: under steady polling the base is the newest sample at
// least rateWindow old; after a long pause the previous sample still
// serves as the base.
func TestSamplerWindow(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	s := &sampler{g: prometheus.NewRegistry(), now: clk.Now}
	if _, base, err := s.pair(); err != nil || base != nil {
		t.Fatalf("first gather: base %v, err %v", base, err)
	}
	var cur sample
	var base *sample
	for range 10 {
		clk.add(time.Second)
		cur, base, _ = s.pair()
	}
	if got := cur.at.Sub(base.at); got != rateWindow || len(s.ring) != 6 {
		t.Fatalf("steady polling: window %v with %d samples, want %v and 6", got, len(s.ring), rateWindow)
	}
	clk.add(300 * time.Millisecond)
	if again, _, _ := s.pair(); !again.at.Equal(cur.at) {
		t.Fatal("a poll within minSampleGap gathered again")
	}
	clk.add(time.Minute)
	cur, base, _ = s.pair()
	if base == nil || cur.at.Sub(base.at) != time.Minute+300*time.Millisecond || len(s.ring) != 2 {
		t.Fatalf("after a pause: base %v, ring %d", base, len(s.ring))
	}
}
