package overloadbench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run. Its JSON form is what
// `bulwark bench overload --json FILE` writes.
type Report struct {
	CapacityPerSec float64 `json:"capacity_per_sec"`
	// UnloadedP99Ms is the p99 latency per class and over all classes
	// ("all") at UnloadedFactor of capacity, admission on. The checks
	// compare with "all": the backend serves every class alike, and the
	// top class alone is a handful of samples at that load.
	UnloadedP99Ms map[string]float64 `json:"unloaded_p99_ms"`
	Results       []Result           `json:"results"`
	Totals        []Total            `json:"totals"`
	Checks        []Check            `json:"checks"` // the targets, at the highest load factor
	// CPUs and LoadAverage (1-minute, at start and end) describe the
	// machine: the generator runs in the same process as the server, so a
	// busy machine shows in every client-side latency.
	CPUs        int        `json:"cpus"`
	LoadAverage [2]float64 `json:"load_average"`
}

// Result is one class at one load factor, admission on or off. Rates are
// over the measured part of the phase (after Warmup).
type Result struct {
	Admission     string  `json:"admission"` // "on" or "off"
	LoadFactor    float64 `json:"load_factor"`
	Class         string  `json:"class"`
	OfferedPerSec float64 `json:"offered_per_sec"`
	SuccessRate   float64 `json:"success_rate"`    // 2xx within RequestTimeout / offered
	GoodputPerSec float64 `json:"goodput_per_sec"` // 2xx within RequestTimeout per second
	RejectedRate  float64 `json:"rejected_rate"`   // 429/503 answers / offered
	P50Ms         float64 `json:"p50_ms"`          // latency of successes
	P99Ms         float64 `json:"p99_ms"`
	RejectP99Ms   float64 `json:"reject_p99_ms"` // latency of 429/503 answers (0: none)
}

// Total is every class together at one load factor.
type Total struct {
	Admission     string  `json:"admission"`
	LoadFactor    float64 `json:"load_factor"`
	OfferedPerSec float64 `json:"offered_per_sec"`
	GoodputPerSec float64 `json:"goodput_per_sec"`
	SuccessRate   float64 `json:"success_rate"`
	// RejectServerP99Ms is the p99 time of 429/503 answers inside the
	// server, from the handler's start to its return: the admission
	// decision and the problem document, without the client and the
	// network stack.
	RejectServerP99Ms float64 `json:"reject_server_p99_ms"`
	// RejectClientP99Ms is the p99 time of 429/503 answers at the client,
	// from writing the request on an idle keep-alive connection to the
	// last byte of the answer: RejectServerP99Ms plus loopback, both HTTP
	// stacks and the scheduling of two processes' worth of goroutines.
	RejectClientP99Ms float64 `json:"reject_client_p99_ms"`

	// The generator's own figures. IntendedPerSec is the schedule;
	// SentPerSec what was written (the rest found MaxOutstanding full).
	// GeneratorLagP99Ms is the p99 delay from a request's due time to its
	// write while a connection was free: the generator's CPU, not the
	// server. ConnWaitRate is the share of requests due while all MaxConns
	// connections were busy (a slow server). GeneratorBehind is set when
	// the lag p99 exceeds MaxGeneratorLag: the offer was not the intended
	// one, and the figures of the phase do not measure the server alone.
	IntendedPerSec    float64 `json:"intended_per_sec"`
	SentPerSec        float64 `json:"sent_per_sec"`
	GeneratorLagP99Ms float64 `json:"generator_lag_p99_ms"`
	GeneratorLagMaxMs float64 `json:"generator_lag_max_ms"`
	ConnWaitRate      float64 `json:"conn_wait_rate"`
	GeneratorBehind   bool    `json:"generator_behind"`
}

// Check is one target of the issue, evaluated on this run.
type Check struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Pass   bool    `json:"pass"`
	// Inconclusive: the generator fell behind in the phase, so a miss
	// may be the generator's, not the server's (Pass is false).
	Inconclusive bool `json:"inconclusive,omitempty"`
}

// allClasses keys the pooled unloaded p99.
const allClasses = "all"

// Find returns the row of class at load factor lf with admission "on" or
// "off", or nil.
func (r *Report) Find(admission string, lf float64, class string) *Result {
	for i := range r.Results {
		x := &r.Results[i]
		if x.Admission == admission && x.LoadFactor == lf && x.Class == class {
			return x
		}
	}
	return nil
}

func (r *Report) total(admission string, lf float64) *Total {
	for i := range r.Totals {
		if t := &r.Totals[i]; t.Admission == admission && t.LoadFactor == lf {
			return t
		}
	}
	return nil
}

// WriteJSON writes the report, indented, to path.
func (r *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// addPhase turns the samples of one phase into rows.
func (r *Report) addPhase(cfg Config, admission string, lf, rate float64, samples []sample) {
	secs := (cfg.PhaseDuration - cfg.Warmup).Seconds()
	tot := Total{Admission: admission, LoadFactor: lf, IntendedPerSec: rate}
	var lags, rejAll []time.Duration
	sent, connWait := 0, 0
	for _, s := range samples {
		switch {
		case s.notSent:
			continue
		case s.connWait:
			connWait++
		default:
			lags = append(lags, s.lag)
		}
		sent++
		if s.kind == rejected {
			rejAll = append(rejAll, s.latency)
		}
	}
	tot.SentPerSec = float64(sent) / secs
	if sent > 0 {
		tot.ConnWaitRate = float64(connWait) / float64(sent)
	}
	tot.GeneratorLagP99Ms = percentileMs(lags, 0.99)
	tot.GeneratorLagMaxMs = percentileMs(lags, 1)
	tot.GeneratorBehind = tot.GeneratorLagP99Ms > float64(cfg.MaxGeneratorLag)/float64(time.Millisecond)
	tot.RejectClientP99Ms = percentileMs(rejAll, 0.99)
	for ci, cl := range cfg.Classes {
		var ok, rej []time.Duration
		n := 0
		for _, s := range samples {
			if int(s.class) != ci {
				continue
			}
			n++
			switch s.kind {
			case succeeded:
				ok = append(ok, s.latency)
			case rejected:
				rej = append(rej, s.latency)
			}
		}
		row := Result{Admission: admission, LoadFactor: lf, Class: cl.Name,
			OfferedPerSec: float64(n) / secs, GoodputPerSec: float64(len(ok)) / secs,
			P50Ms: percentileMs(ok, 0.50), P99Ms: percentileMs(ok, 0.99), RejectP99Ms: percentileMs(rej, 0.99)}
		if n > 0 {
			row.SuccessRate = float64(len(ok)) / float64(n)
			row.RejectedRate = float64(len(rej)) / float64(n)
		}
		r.Results = append(r.Results, row)
		tot.OfferedPerSec += row.OfferedPerSec
		tot.GoodputPerSec += row.GoodputPerSec
	}
	if tot.OfferedPerSec > 0 {
		tot.SuccessRate = tot.GoodputPerSec / tot.OfferedPerSec
	}
	r.Totals = append(r.Totals, tot)
}

func percentileMs(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	i = max(0, min(len(d)-1, i))
	return float64(d[i]) / float64(time.Millisecond)
}

// evaluate fills Checks from the rows at the highest load factor.
func (r *Report) evaluate(cfg Config) {
	lf := slices.Max(cfg.LoadFactors)
	top := cfg.Classes[0].Name
	on, off := r.Find("on", lf, top), r.Find("off", lf, top)
	tOn, tOff := r.total("on", lf), r.total("off", lf)
	if on == nil || off == nil || tOn == nil || tOff == nil {
		return
	}
	rejectP99 := 0.0
	for _, x := range r.Results {
		if x.Admission == "on" && x.LoadFactor == lf {
			rejectP99 = max(rejectP99, x.RejectP99Ms)
		}
	}
	unloaded := r.UnloadedP99Ms[allClasses]
	ratio := 0.0
	if unloaded > 0 {
		ratio = on.P99Ms / unloaded
	}
	lfs := fmt.Sprintf("%g×", lf)
	defer func() {
		for i := range r.Checks {
			if c := &r.Checks[i]; !c.Pass && (tOn.GeneratorBehind || tOff.GeneratorBehind) {
				c.Inconclusive = true
			}
		}
	}()
	chk := func(name string, v float64, target string, pass bool) Check {
		return Check{Name: name, Value: v, Target: target, Pass: pass}
	}
	r.Checks = []Check{
		chk(top+" success, admission on, "+lfs, on.SuccessRate, "≥ 0.999", on.SuccessRate >= 0.999),
		chk(top+" p99 / unloaded p99, admission on, "+lfs, ratio, "≤ 2", ratio > 0 && ratio <= 2),
		chk("goodput / capacity, admission on, "+lfs, tOn.GoodputPerSec/r.CapacityPerSec, "≥ 0.9", tOn.GoodputPerSec >= 0.9*r.CapacityPerSec),
		chk("rejection p99 ms at the client, admission on, "+lfs, rejectP99, "< 1", rejectP99 < 1),
		chk("rejection p99 ms in the server, admission on, "+lfs, tOn.RejectServerP99Ms, "< 1", tOn.RejectServerP99Ms < 1),
		chk("goodput / capacity, admission off, "+lfs+" (collapse)", tOff.GoodputPerSec/r.CapacityPerSec,
			"below admission on", tOff.GoodputPerSec < tOn.GoodputPerSec && off.SuccessRate < on.SuccessRate),
	}
}

// Print writes the report as tables.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "capacity %.0f req/s; unloaded p99 ms %v; %d CPUs, load average %.1f → %.1f\n\n",
		r.CapacityPerSec, r.UnloadedP99Ms, r.CPUs, r.LoadAverage[0], r.LoadAverage[1])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "admission\tload\tclass\toffered/s\tsuccess\tgoodput/s\trejected\tp50 ms\tp99 ms\treject p99 ms\t")
	for _, x := range r.Results {
		fmt.Fprintf(tw, "%s\t%g×\t%s\t%.0f\t%.4f\t%.0f\t%.3f\t%.1f\t%.1f\t%.2f\t\n", x.Admission, x.LoadFactor, x.Class,
			x.OfferedPerSec, x.SuccessRate, x.GoodputPerSec, x.RejectedRate, x.P50Ms, x.P99Ms, x.RejectP99Ms)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "admission\tload\tintended/s\tsent/s\tgoodput/s\tgoodput/capacity\treject p99 ms client\tserver\tgen lag p99 ms\tmax\tconn wait\t")
	for _, t := range r.Totals {
		behind := ""
		if t.GeneratorBehind {
			behind = "  generator behind"
		}
		fmt.Fprintf(tw, "%s\t%g×\t%.0f\t%.0f\t%.0f\t%.2f\t%.3f\t%.3f\t%.2f\t%.1f\t%.3f\t%s\n", t.Admission, t.LoadFactor,
			t.IntendedPerSec, t.SentPerSec, t.GoodputPerSec, t.GoodputPerSec/r.CapacityPerSec,
			t.RejectClientP99Ms, t.RejectServerP99Ms, t.GeneratorLagP99Ms, t.GeneratorLagMaxMs, t.ConnWaitRate, behind)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, c := range r.Checks {
		mark := "PASS"
		switch {
		case c.Inconclusive:
			mark = "MISS (inconclusive: the generator fell behind)"
		case !c.Pass:
			mark = "MISS"
		}
		fmt.Fprintf(w, "%s  %s = %.4g (target %s)\n", mark, c.Name, c.Value, c.Target)
	}
}
