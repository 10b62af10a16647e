package admission

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are resolved to plain counters up front, one per priority and
// reason, so that the hot path does an atomic add and no label lookup.
type metrics struct {
	admitted   [MaxLevels]prometheus.Counter
	rejected   [MaxLevels][numReasons]prometheus.Counter
	downgraded [2]prometheus.Counter // source, traffic
}

func newMetrics(c *Controller, reg prometheus.Registerer) (*metrics, error) {
	admitted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "bulwark", Subsystem: "admission", Name: "admitted_total",
		Help: "Requests admitted, by priority (0 is the lowest level).",
	}, []string{"priority"})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "bulwark", Subsystem: "admission", Name: "rejected_total",
		Help: "Requests rejected, by priority and reason (quota, burst, threshold, capacity, collapse, hard_limit, traffic_quota).",
	}, []string{"priority", "reason"})
	downgraded := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "bulwark", Subsystem: "admission", Name: "claims_downgraded_total",
		Help: "Source or traffic-type headers not covered by the API key's entitlements, replaced by its default.",
	}, []string{"dimension"})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "bulwark", Subsystem: "admission", Name: name, Help: help,
		}, f)
	}
	collectors := []prometheus.Collector{
		admitted, rejected, downgraded,
		gauge("stage", "Overload stage: 1 normal, 2 shedding, 3 collapse.", func() float64 { return float64(c.Stage()) }),
		gauge("capacity_estimate", "Adaptive capacity estimate, requests in flight (probe applied).",
			func() float64 { return float64(c.lim.eff.Load()) }),
		gauge("inflight", "Admitted requests not yet done.", func() float64 { return float64(c.inflight.Load()) }),
		gauge("queue_delay_seconds", "Mean latency of the last window above the baseline latency.",
			func() float64 { return float64(c.lim.queueDelay.Load()) / 1e9 }),
		gauge("baseline_latency_seconds", "Probed no-load latency.",
			func() float64 { return float64(c.lim.baseline.Load()) / 1e9 }),
		gauge("shed_threshold", "Shedding threshold in levels: levels below it are rejected in stage 2.",
			func() float64 { return c.thr.load() }),
		gauge("quota_buckets", "Quota token buckets held, one per (tenant, class) seen; at most MaxTenantQuotas.",
			func() float64 { n, _ := c.quotas.sizes(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "bulwark", Subsystem: "admission", Name: "quota_buckets_evicted_total",
			Help: "Quota buckets evicted from a full table (recreated full on the tenant's next request).",
		}, func() float64 { _, e := c.quotas.sizes(); return float64(e) }),
	}
	if reg != nil {
		for _, col := range collectors {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("register admission metrics: %w", err)
			}
		}
	}
	m := &metrics{}
	for p := range MaxLevels {
		m.admitted[p] = admitted.WithLabelValues(Priority(p).String())
		for r := range numReasons {
			m.rejected[p][r] = rejected.WithLabelValues(Priority(p).String(), r.String())
		}
	}
	m.downgraded[0] = downgraded.WithLabelValues("source")
	m.downgraded[1] = downgraded.WithLabelValues("traffic")
	return m, nil
}
