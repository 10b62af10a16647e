package exportbench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

// Report is what `bulwark bench export --json FILE` writes.
type Report struct {
	Rows    int      `json:"rows"`
	Results []Result `json:"results"`
	Checks  []Check  `json:"checks"`
}

// Result is one figure.
type Result struct {
	Metric string  `json:"metric"`
	Mode   string  `json:"mode"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
}

// Check is one target of the issue with the measured ratio.
type Check struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
}

func (r *Report) add(metric, mode string, v float64, unit string) {
	r.Results = append(r.Results, Result{metric, mode, v, unit})
}

func (r *Report) get(metric, mode string) float64 {
	for _, x := range r.Results {
		if x.Metric == metric && x.Mode == mode {
			return x.Value
		}
	}
	return 0
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// checks computes the targets: CSV ≥ 80% of COPY, RSS ≤ 64 MiB, both p99s
// within 1.5× of alone while 4 huge exports run.
func (r *Report) checks() {
	csv := ratio(r.get("rows_per_sec", "csv"), r.get("rows_per_sec", "copy"))
	rss := r.get("rss_peak_bytes", "csv") / (1 << 20)
	small := ratio(r.get("small_export_p99_ms", ModeWithHuge), r.get("small_export_p99_ms", ModeAlone))
	write := ratio(r.get("ledger_write_p99_ms", ModeWithHuge), r.get("ledger_write_p99_ms", ModeAlone))
	r.Checks = []Check{
		{"csv_over_copy", csv, ">= 0.8", csv >= 0.8},
		{"rss_peak_mib", rss, "<= 64", rss <= 64},
		{"small_export_p99_with_huge_over_alone", small, "<= 1.5", small <= 1.5},
		{"ledger_write_p99_with_huge_over_alone", write, "<= 1.5", write <= 1.5},
		{"small_export_p99_shared_over_alone", ratio(r.get("small_export_p99_ms", ModeShared), r.get("small_export_p99_ms", ModeAlone)), "(what isolation prevents)", true},
		{"ledger_write_p99_shared_over_alone", ratio(r.get("ledger_write_p99_ms", ModeShared), r.get("ledger_write_p99_ms", ModeAlone)), "(what isolation prevents)", true},
	}
}

func (r *Report) print(out io.Writer) {
	r.checks()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "metric\tmode\tvalue\tunit\t\n")
	for _, x := range r.Results {
		fmt.Fprintf(w, "%s\t%s\t%.2f\t%s\t\n", x.Metric, x.Mode, x.Value, x.Unit)
	}
	fmt.Fprintf(w, "\t\t\t\t\ncheck\ttarget\tvalue\tmet\t\n")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%s\t%s\t%.2f\t%v\t\n", c.Name, c.Target, c.Value, c.Met)
	}
	_ = w.Flush()
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
