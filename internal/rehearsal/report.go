package rehearsal

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Verdicts.
const (
	VerdictPass = "pass"
	VerdictFail = "fail"
)

// Report of a rehearsal (the JSON of --json).
type Report struct {
	CapacityPerSec float64 `json:"capacity_per_sec"`
	// CapacityCapped: payments still met their objectives at MaxRate.
	CapacityCapped bool       `json:"capacity_capped"`
	Verdict        string     `json:"verdict"`
	Tenant         string     `json:"tenant,omitempty"` // created for the run
	Objectives     Objectives `json:"objectives"`
	Checks         []Check    `json:"checks"`
	CapacitySteps  []Step     `json:"capacity_steps"`
	Stages         []Row      `json:"stages"`
}

// Objectives the verdict was judged against.
type Objectives struct {
	At          []float64 `json:"at"`
	Success     float64   `json:"success"`
	P99Ratio    float64   `json:"p99_ratio"`
	CapacityP99 float64   `json:"capacity_p99_ms"`
}

func objectives(cfg *Config) Objectives {
	return Objectives{At: cfg.At, Success: cfg.Success, P99Ratio: cfg.P99Ratio, CapacityP99: msf(cfg.CapacityP99)}
}

// Step is one rate of the capacity search.
type Step struct {
	RatePerSec          float64 `json:"rate_per_sec"`
	PaymentsOffered     int64   `json:"payments_offered"`
	PaymentsP99Ms       float64 `json:"payments_p99_ms"`
	PaymentsNotAchieved float64 `json:"payments_not_achieved"`
	Good                bool    `json:"good"`
}

// Row is one class in one stage. Counts are of arrivals; offered =
// achieved + rejected + dropped + errors. Latencies are of achieved
// requests.
type Row struct {
	LoadFactor     float64          `json:"load_factor"`
	Class          string           `json:"class"`
	RatePerSec     float64          `json:"rate_per_sec"` // the stage's offered rate, all classes
	Preset         string           `json:"preset,omitempty"`
	DurationSec    float64          `json:"duration_s"`
	Offered        int64            `json:"offered"`
	Achieved       int64            `json:"achieved"`
	OfferedPerSec  float64          `json:"offered_per_sec"`
	AchievedPerSec float64          `json:"achieved_per_sec"`
	SuccessRate    float64          `json:"success_rate"`
	P50Ms          float64          `json:"p50_ms"`
	P99Ms          float64          `json:"p99_ms"`
	Rejected       int64            `json:"rejected"`
	RejectedByCode map[string]int64 `json:"rejected_by_code"`
	Dropped        int64            `json:"dropped"`
	Errors         int64            `json:"errors"`
	// GeneratorLagMs is the most an arrival of the stage was sent after
	// it was due (the generator's own delay; the same for every class).
	GeneratorLagMs float64 `json:"generator_lag_ms"`
}

func newRow(f, rate float64, dur time.Duration, class, preset string, t *tally) Row {
	s := dur.Seconds()
	r := Row{LoadFactor: f, Class: class, RatePerSec: rate, Preset: preset, DurationSec: s,
		Offered: t.offered, Achieved: t.achieved, OfferedPerSec: float64(t.offered) / s, AchievedPerSec: float64(t.achieved) / s,
		P50Ms: msf(t.percentile(0.5)), P99Ms: msf(t.percentile(0.99)),
		Rejected: t.rejectedTotal(), RejectedByCode: t.rejected, Dropped: t.dropped, Errors: t.errors}
	if t.offered > 0 {
		r.SuccessRate = float64(t.achieved) / float64(t.offered)
	}
	return r
}

// lagWarnMs: a generator more than 100 ms behind its schedule is noted
// under the table.
const lagWarnMs = 100

// Check is one objective judged at one factor.
type Check struct {
	LoadFactor  float64 `json:"load_factor"`
	SuccessRate float64 `json:"success_rate"`
	P99Ms       float64 `json:"p99_ms"`
	MaxP99Ms    float64 `json:"max_p99_ms"` // P99Ratio × payments p99 at 1×
	Pass        bool    `json:"pass"`
	Why         string  `json:"why,omitempty"`
}

func (r *Report) row(f float64, class string) *Row {
	for i := range r.Stages {
		if r.Stages[i].LoadFactor == f && r.Stages[i].Class == class {
			return &r.Stages[i]
		}
	}
	return nil
}

// judge sets Checks and Verdict: at each factor of At, payments must
// succeed at least Success of the time with p99 at most P99Ratio × their
// p99 at 1×.
func (r *Report) judge(cfg *Config) {
	base := r.row(1, ClassPayments)
	r.Verdict = VerdictPass
	for _, at := range cfg.At {
		row := r.row(at, ClassPayments)
		c := Check{LoadFactor: at, SuccessRate: row.SuccessRate, P99Ms: row.P99Ms, MaxP99Ms: cfg.P99Ratio * base.P99Ms}
		var why []string
		if row.SuccessRate < cfg.Success {
			why = append(why, fmt.Sprintf("success %.4f < %.4f", row.SuccessRate, cfg.Success))
		}
		if base.Achieved == 0 {
			why = append(why, "no payment achieved at 1×: no p99 baseline")
		} else if row.P99Ms > c.MaxP99Ms {
			why = append(why, fmt.Sprintf("p99 %.1fms > %g × %.1fms", row.P99Ms, cfg.P99Ratio, base.P99Ms))
		}
		c.Pass, c.Why = len(why) == 0, strings.Join(why, "; ")
		if !c.Pass {
			r.Verdict = VerdictFail
		}
		r.Checks = append(r.Checks, c)
	}
}

// WriteTable prints the capacity search, a row per stage and class, and
// the verdict.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "capacity search\trate/s\tpayments p99 ms\tnot achieved\tgood\t\n")
	for _, s := range r.CapacitySteps {
		fmt.Fprintf(tw, "\t%.0f\t%.1f\t%.4f\t%v\t\n", s.RatePerSec, s.PaymentsP99Ms, s.PaymentsNotAchieved, s.Good)
	}
	capped := ""
	if r.CapacityCapped {
		capped = " (capped by --max-rate)"
	}
	fmt.Fprintf(tw, "capacity\t%.0f/s%s\t\t\t\t\n\n", r.CapacityPerSec, capped)
	fmt.Fprintf(tw, "factor\trate/s\tclass\toffered/s\tachieved/s\tsuccess\tp50 ms\tp99 ms\trejected\tdropped\terrors\tpreset\t\n")
	for _, s := range r.Stages {
		fmt.Fprintf(tw, "%g×\t%.0f\t%s\t%.1f\t%.1f\t%.4f\t%.1f\t%.1f\t%s\t%d\t%d\t%s\t\n", s.LoadFactor, s.RatePerSec, s.Class,
			s.OfferedPerSec, s.AchievedPerSec, s.SuccessRate, s.P50Ms, s.P99Ms, byCode(s.Rejected, s.RejectedByCode), s.Dropped, s.Errors, s.Preset)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Stages {
		if s.Class == r.Stages[0].Class && s.GeneratorLagMs > lagWarnMs {
			fmt.Fprintf(w, "note: at %g× the generator sent arrivals up to %.0fms late (CPU-starved): the offer was burstier than scheduled\n",
				s.LoadFactor, s.GeneratorLagMs)
		}
	}
	for _, c := range r.Checks {
		res := "pass"
		if !c.Pass {
			res = "FAIL: " + c.Why
		}
		fmt.Fprintf(w, "at %g×: payments success %.4f, p99 %.1fms (max %.1fms): %s\n", c.LoadFactor, c.SuccessRate, c.P99Ms, c.MaxP99Ms, res)
	}
	_, err := fmt.Fprintf(w, "verdict: %s\n", r.Verdict)
	return err
}

func byCode(total int64, m map[string]int64) string {
	if total == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, " "))
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
