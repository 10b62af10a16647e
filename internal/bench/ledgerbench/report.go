package ledgerbench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets of the issue, printed as PASS/MISS; informative only.
const (
	targetHotRatio = 50.0
	targetP99Ms    = 100.0
	// targetClientShare: client single reaches this share of pipeline
	// batch100's throughput, in the same run.
	targetClientShare = 0.8
)

// Report is the outcome of Run.
type Report struct {
	// Seed replays the transfers of the run.
	Seed    uint64   `json:"seed"`
	Results []Result `json:"results"`
}

// Result is one mode and request type. Throughput and latency count the
// requests that finished inside the measured window; Errors counts failed
// transfers over the whole run (warm-up included, a failed batch100
// request counts 100) plus invariant violations found after it.
type Result struct {
	Workload        string  `json:"workload"`
	Mode            string  `json:"mode"`
	Request         string  `json:"request"`
	Clients         int     `json:"clients"`
	TransfersPerSec float64 `json:"transfers_per_sec"`
	P50Ms           float64 `json:"p50_ms"`
	P99Ms           float64 `json:"p99_ms"`
	Errors          int64   `json:"errors"`

	// Transfers and Requests acknowledged inside the window of DurationS:
	// the configured Duration, or longer when the window waited for every
	// client to finish a request (slow requests; see window).
	Transfers int64   `json:"transfers"`
	Requests  int64   `json:"requests"`
	DurationS float64 `json:"duration_s"`
	// Violations of ledger invariants after the run (counted in Errors).
	Violations []string `json:"violations"`
	// FirstError is a sample of the failures, empty without any.
	FirstError string `json:"first_error,omitempty"`
	// BatchTransactionsAvg and BatchMsAvg describe the database
	// transactions of the window: transfers per commit and time per commit
	// (naive: one per request).
	BatchTransactionsAvg float64 `json:"batch_transactions_avg"`
	BatchMsAvg           float64 `json:"batch_ms_avg"`
	// ProcessCPUCores is this process's CPU time (clients and server
	// together, PostgreSQL not included) per second of the window.
	ProcessCPUCores float64 `json:"process_cpu_cores"`
	// Committers is, in mode floor, the concurrent commits of the
	// reported split (see floor.go); zero in the other modes.
	Committers int `json:"committers,omitempty"`
}

func (m *measurement) result(cfg *Config, mode, request string, violations []string) Result {
	secs := m.window.Seconds()
	r := Result{
		Workload: cfg.Workload, Mode: mode, Request: request, Clients: cfg.Clients,
		TransfersPerSec: round(float64(m.stats.committed)/secs, 1),
		P50Ms:           ms(m.stats.hist.quantile(0.50)),
		P99Ms:           ms(m.stats.hist.quantile(0.99)),
		Errors:          m.stats.errors + int64(len(violations)),
		Transfers:       m.stats.committed,
		Requests:        m.stats.requests,
		DurationS:       secs,
		Violations:      append([]string{}, violations...),
		FirstError:      m.stats.firstErr,
		ProcessCPUCores: round(m.cpu.Seconds()/secs, 2),
	}
	if m.pipe.batches > 0 {
		r.BatchTransactionsAvg = round(m.pipe.transactions/m.pipe.batches, 1)
		r.BatchMsAvg = round(1000*m.pipe.seconds/m.pipe.batches, 3)
	}
	return r
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteTable prints the results, the pipeline/naive ratios, failure
// samples, and whether the targets are met.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tmode\trequest\tclients\ttransfers/s\tp50 ms\tp99 ms\terrors\t\ttx/commit\tms/commit\tgo cpu\t")
	for _, x := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%d\t\t%.1f\t%.2f\t%.2f\t\n", x.Workload, x.Mode, x.Request,
			x.Clients, x.TransfersPerSec, x.P50Ms, x.P99Ms, x.Errors, x.BatchTransactionsAvg, x.BatchMsAvg, x.ProcessCPUCores)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, x := range r.Results {
		if x.FirstError != "" || len(x.Violations) > 0 {
			fmt.Fprintf(w, "%s %s: first error: %q; violations: %v\n", x.Mode, x.Request, x.FirstError, x.Violations)
		}
	}
	for _, req := range r.requests() {
		if p, n, ok := r.pair(req); ok {
			fmt.Fprintf(w, "pipeline/naive %s: %s\n", req, ratioText(p.TransfersPerSec, n.TransfersPerSec))
		}
	}
	_, err := fmt.Fprintln(w, r.targets())
	return err
}

// targets summarises the targets as PASS/MISS.
func (r *Report) targets() string {
	var ratio, p99 []string
	var errs int64
	for _, x := range r.Results {
		errs += x.Errors
		if x.Mode == ModePipeline {
			p99 = append(p99, fmt.Sprintf("%s %.1f ms %s", x.Request, x.P99Ms, pass(x.Requests > 0 && x.P99Ms < targetP99Ms)))
		}
	}
	for _, req := range r.requests() {
		if p, n, ok := r.pair(req); ok && p.Workload == WorkloadHot {
			ok := n.TransfersPerSec > 0 && p.TransfersPerSec >= targetHotRatio*n.TransfersPerSec
			ratio = append(ratio, fmt.Sprintf("%s %s %s", req, ratioText(p.TransfersPerSec, n.TransfersPerSec), pass(ok)))
		}
	}
	var b strings.Builder
	b.WriteString("targets (informative):")
	if len(ratio) > 0 {
		fmt.Fprintf(&b, " hot pipeline/naive >= %.0fx: %s;", targetHotRatio, strings.Join(ratio, ", "))
	}
	fmt.Fprintf(&b, " errors == 0: %s;", pass(errs == 0))
	if len(p99) > 0 {
		fmt.Fprintf(&b, " pipeline p99 < %.0f ms: %s;", targetP99Ms, strings.Join(p99, ", "))
	}
	if c, p := r.find(ModeClient, RequestSingle), r.find(ModePipeline, RequestBatch100); c != nil && p != nil {
		share := 0.0
		if p.TransfersPerSec > 0 {
			share = c.TransfersPerSec / p.TransfersPerSec
		}
		fmt.Fprintf(&b, " client single >= %.0f%% of pipeline batch100: %.0f%% %s", 100*targetClientShare, 100*share,
			pass(p.TransfersPerSec > 0 && share >= targetClientShare))
		if bound, ok := closedLoopBound(c, p); ok && p.TransfersPerSec > 0 {
			fmt.Fprintf(&b, " (bound of %d closed-loop callers with commit times as measured: %.0f/s, %.0f%%)",
				c.Clients, bound, 100*bound/p.TransfersPerSec)
		}
		b.WriteString(";")
	}
	if f := r.find(ModeFloor, RequestSingle); f != nil {
		// What PostgreSQL alone commits with the client row's transfers in
		// flight bounds any client: against the pipeline's batch100 it says
		// whether the target is in reach at all, against the floor's own
		// batch100 what share any design could reach.
		fmt.Fprintf(&b, " floor (PostgreSQL alone, %d transfers in flight): single %.0f/s", f.Clients, f.TransfersPerSec)
		if p := r.find(ModePipeline, RequestBatch100); p != nil && p.TransfersPerSec > 0 {
			fmt.Fprintf(&b, " = %.0f%% of pipeline batch100", 100*f.TransfersPerSec/p.TransfersPerSec)
		}
		if fb := r.find(ModeFloor, RequestBatch100); fb != nil && fb.TransfersPerSec > 0 {
			fmt.Fprintf(&b, ", %.0f%% of floor batch100", 100*f.TransfersPerSec/fb.TransfersPerSec)
		}
		b.WriteString(";")
	}
	b.WriteString(" hot vs uniform within 2x: compare runs of both workloads")
	return b.String()
}

// closedLoopBound bounds the client mode's rate: its callers wait for
// their own transfer, so at most c.Clients transfers are in flight, and a
// round of them takes at least one commit of that many transfers (Little's
// law: rate <= in flight / round time). A commit's time is fitted as
// fixed + per-transfer cost from the two measured points, the client
// row's commits (small) and the batch row's (large); HTTP, queueing and
// the client's linger only add to the round.
func closedLoopBound(c, batch *Result) (float64, bool) {
	x1, y1, x2, y2 := c.BatchTransactionsAvg, c.BatchMsAvg, batch.BatchTransactionsAvg, batch.BatchMsAvg
	if x1 <= 0 || x2 <= x1 || y1 <= 0 || y2 <= 0 || c.Clients <= 0 {
		return 0, false
	}
	per := (y2 - y1) / (x2 - x1)
	fixed := max(y1-per*x1, 0)
	round := fixed + per*float64(c.Clients)
	if round <= 0 {
		return 0, false
	}
	return float64(c.Clients) / (round / 1000), true
}

func (r *Report) requests() []string {
	var out []string
	for _, x := range r.Results {
		if !slices.Contains(out, x.Request) {
			out = append(out, x.Request)
		}
	}
	return out
}

// find returns the result of mode and request, nil if none.
func (r *Report) find(mode, request string) *Result {
	for i := range r.Results {
		if r.Results[i].Mode == mode && r.Results[i].Request == request {
			return &r.Results[i]
		}
	}
	return nil
}

// pair returns the pipeline and naive results of a request type.
func (r *Report) pair(request string) (p, n Result, ok bool) {
	var hasP, hasN bool
	for _, x := range r.Results {
		switch {
		case x.Request == request && x.Mode == ModePipeline:
			p, hasP = x, true
		case x.Request == request && x.Mode == ModeNaive:
			n, hasN = x, true
		}
	}
	return p, n, hasP && hasN
}

func ratioText(a, b float64) string {
	if b == 0 {
		return "n/a (naive 0/s)"
	}
	return fmt.Sprintf("%.1fx", a/b)
}

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}
