package console

import (
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The console reads the same registry that /metrics serves: it gathers it
// when a page asks (never in the background, so an unwatched console costs
// nothing) and derives rates and quantiles from two gathers a few seconds
// apart, as Prometheus's rate() and histogram_quantile() would from two
// scrapes.

const (
	// minSampleGap: polls closer together than this share one gather (the
	// page polls every second; several open tabs do not multiply gathers).
	minSampleGap = 900 * time.Millisecond
	// rateWindow is how far back rates and quantiles look: long enough to
	// smooth a one-second blip, short enough that a surge shows within
	// seconds.
	rateWindow = 5 * time.Second
	// maxSamples bounds the ring: rateWindow / minSampleGap ≈ 6, plus room.
	maxSamples = 12
)

// families is one gather, by metric name.
type families map[string]*dto.MetricFamily

// sample is one gather and its time.
type sample struct {
	at   time.Time
	fams families
}

// sampler keeps the recent gathers of one registry.
type sampler struct {
	g   prometheus.Gatherer
	now func() time.Time

	mu   sync.Mutex
	ring []sample // oldest first, at most maxSamples; only the first may be more than rateWindow older than the newest
}

// pair gathers if the newest sample is older than minSampleGap, and
// returns the newest sample and the base to compute rates from (nil with a
// single sample: no rate yet).
func (s *sampler) pair() (cur sample, base *sample, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if n := len(s.ring); n == 0 || now.Sub(s.ring[n-1].at) >= minSampleGap {
		mfs, err := s.g.Gather()
		if err != nil && len(mfs) == 0 {
			return sample{}, nil, err
		}
		// A partial gather (one collector failing) still serves the rest,
		// as promhttp does with ContinueOnError.
		fams := make(families, len(mfs))
		for _, mf := range mfs {
			fams[mf.GetName()] = mf
		}
		s.ring = append(s.ring, sample{at: now, fams: fams})
		if len(s.ring) > maxSamples {
			s.ring = s.ring[len(s.ring)-maxSamples:]
		}
	}
	cur = s.ring[len(s.ring)-1]
	// Keep, as the base, the newest sample at least rateWindow old: rates
	// span about rateWindow under steady polling, and a page polled
	// rarely (a background tab) still gets a rate, over a longer window
	// that the summary states.
	i := 0
	for i < len(s.ring)-2 && cur.at.Sub(s.ring[i+1].at) >= rateWindow {
		i++
	}
	s.ring = s.ring[i:]
	if len(s.ring) > 1 {
		b := s.ring[0]
		base = &b
	}
	return cur, base, nil
}

// labels returns a series' labels as a map.
func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// seriesKey identifies a series within its family.
func seriesKey(m *dto.Metric) string {
	var b strings.Builder
	for _, l := range m.GetLabel() {
		b.WriteString(l.GetName())
		b.WriteByte('=')
		b.WriteString(l.GetValue())
		b.WriteByte(',')
	}
	return b.String()
}

// value is a counter's, gauge's or untyped series' value (a histogram's
// or summary's: its count).
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Summary != nil:
		return float64(m.GetSummary().GetSampleCount())
	}
	return 0
}

// match selects series by their labels.
type match func(map[string]string) bool

// sum adds the values of the series of name that m selects (nil: all);
// ok is false when the family is absent.
func (f families) sum(name string, m match) (total float64, ok bool) {
	mf, ok := f[name]
	if !ok {
		return 0, false
	}
	for _, s := range mf.GetMetric() {
		if m == nil || m(labels(s)) {
			total += value(s)
		}
	}
	return total, true
}

// gauge is sum for a single gauge: nil when absent.
func (f families) gauge(name string) *float64 {
	v, ok := f.sum(name, nil)
	if !ok {
		return nil
	}
	return &v
}

// rate is the per-second increase of the selected series of a counter
// between base and cur; nil without a base. A reset (the value fell) counts
// from zero, as Prometheus's rate() does.
func rate(cur sample, base *sample, name string, m match) *float64 {
	if base == nil {
		return nil
	}
	now, ok := cur.fams.sum(name, m)
	if !ok {
		return nil
	}
	then, _ := base.fams.sum(name, m)
	d := now - then
	if d < 0 {
		d = now
	}
	secs := cur.at.Sub(base.at).Seconds()
	if secs <= 0 {
		return nil
	}
	r := d / secs
	return &r
}

// hist is a cumulative histogram merged over series: bucket upper bounds
// and cumulative counts, plus the sum and count of observations.
type hist struct {
	bounds []float64
	cum    []float64
	sum    float64
	count  float64
}

// histogram merges the selected series of a histogram family (the same
// bucket layout, as one HistogramVec has).
func (f families) histogram(name string, m match) (hist, bool) {
	mf, ok := f[name]
	if !ok {
		return hist{}, false
	}
	byBound := map[float64]float64{}
	var h hist
	for _, s := range mf.GetMetric() {
		if s.Histogram == nil || (m != nil && !m(labels(s))) {
			continue
		}
		for _, b := range s.GetHistogram().GetBucket() {
			byBound[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
		h.sum += s.GetHistogram().GetSampleSum()
		h.count += float64(s.GetHistogram().GetSampleCount())
	}
	for b := range byBound {
		h.bounds = append(h.bounds, b)
	}
	sort.Float64s(h.bounds)
	for _, b := range h.bounds {
		h.cum = append(h.cum, byBound[b])
	}
	return h, true
}

// delta is cur − base bucket by bucket (base may be empty).
func (h hist) delta(base hist) hist {
	prev := make(map[float64]float64, len(base.bounds))
	for i, b := range base.bounds {
		prev[b] = base.cum[i]
	}
	out := hist{bounds: h.bounds, cum: make([]float64, len(h.cum)), sum: h.sum - base.sum, count: h.count - base.count}
	for i, b := range h.bounds {
		out.cum[i] = h.cum[i] - prev[b]
	}
	if out.count < 0 { // the process restarted its histogram: use cur alone
		return h
	}
	return out
}

// quantile estimates the q-quantile by linear interpolation inside the
// bucket that holds it, as histogram_quantile does; in the overflow bucket
// it answers the highest finite bound. ok is false with no observations.
func (h hist) quantile(q float64) (float64, bool) {
	if h.count <= 0 || len(h.bounds) == 0 {
		return 0, false
	}
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, b := range h.bounds {
		if h.cum[i] >= rank {
			if math.IsInf(b, 1) {
				return lower, true
			}
			inBucket := h.cum[i] - below
			if inBucket <= 0 {
				return b, true
			}
			return lower + (b-lower)*(rank-below)/inBucket, true
		}
		lower, below = b, h.cum[i]
	}
	return lower, true // rank beyond the last explicit bucket: client_golang's implicit +Inf
}

// windowHist is the histogram of the window (cur − base), or nil.
func windowHist(cur sample, base *sample, name string, m match) *hist {
	if base == nil {
		return nil
	}
	now, ok := cur.fams.histogram(name, m)
	if !ok {
		return nil
	}
	then, _ := base.fams.histogram(name, m)
	d := now.delta(then)
	return &d
}

// quantileOf is the window's q-quantile scaled by scale (1000: seconds to
// milliseconds), or nil.
func quantileOf(h *hist, q, scale float64) *float64 {
	if h == nil {
		return nil
	}
	v, ok := h.quantile(q)
	if !ok {
		return nil
	}
	v *= scale
	return &v
}

// meanOf is the window's mean observation scaled by scale, or nil.
func meanOf(h *hist, scale float64) *float64 {
	if h == nil || h.count <= 0 {
		return nil
	}
	v := h.sum / h.count * scale
	return &v
}
