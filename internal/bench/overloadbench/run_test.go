package overloadbench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestRunQuick runs the short bench against a small backend (200/s, so
// that 10× stays light under -race) and checks the report's shape and the
// one comparison that holds on any machine: with admission control on, the
// top class fares better at the highest load than with it off.
func TestRunQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ~15 s of load")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{Quick: true, BackendConcurrency: 8, ServiceTime: 40 * time.Millisecond, LoadFactors: []float64{1, 10}}
	var out bytes.Buffer
	rep, err := Run(ctx, cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())

	cfg = cfg.withDefaults()
	if rep.CapacityPerSec <= 0 {
		t.Fatalf("capacity %v", rep.CapacityPerSec)
	}
	if want := 2 * len(cfg.LoadFactors) * len(cfg.Classes); len(rep.Results) != want {
		t.Fatalf("%d result rows, want %d", len(rep.Results), want)
	}
	for _, r := range rep.Results {
		if r.Admission != "on" && r.Admission != "off" || !slices.Contains(cfg.LoadFactors, r.LoadFactor) ||
			r.SuccessRate < 0 || r.SuccessRate > 1 || r.OfferedPerSec <= 0 || r.GoodputPerSec < 0 ||
			r.P50Ms > r.P99Ms || r.RejectP99Ms < 0 {
			t.Errorf("malformed row %+v", r)
		}
	}
	path := filepath.Join(t.TempDir(), "overload.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	checkJSONShape(t, path)

	base := rep.total("on", 1)
	if base == nil {
		t.Fatal("report has no admission-on total at 1×")
	}
	if base.SuccessRate < 0.5 {
		t.Skipf("the machine served under half of 1× capacity with admission on (%+v): too busy to compare", base)
	}
	top := slices.Max(cfg.LoadFactors)
	on, off := rep.Find("on", top, "payments"), rep.Find("off", top, "payments")
	if on.SuccessRate <= off.SuccessRate {
		t.Errorf("payments success at %g×: %.4f with admission on, %.4f off; want on > off", top, on.SuccessRate, off.SuccessRate)
	}
}

// checkJSONShape decodes the file generically: the keys are the contract
// of `bulwark bench overload --json`.
func checkJSONShape(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Capacity *float64         `json:"capacity_per_sec"`
		Results  []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Capacity == nil || len(doc.Results) == 0 {
		t.Fatalf("missing capacity_per_sec or results:\n%s", data)
	}
	for _, key := range []string{"admission", "load_factor", "class", "offered_per_sec", "success_rate",
		"goodput_per_sec", "p50_ms", "p99_ms", "reject_p99_ms"} {
		if _, ok := doc.Results[0][key]; !ok {
			t.Errorf("result has no %q: %v", key, doc.Results[0])
		}
	}
}

// TestRunFull runs the full bench, as `bulwark bench overload` will, when
// BULWARK_BENCH_OVERLOAD_JSON names the file for its report:
//
//	BULWARK_BENCH_OVERLOAD_JSON=/tmp/overload.json go test -run RunFull -v -timeout 10m ./internal/bench/overloadbench
func TestRunFull(t *testing.T) {
	path := os.Getenv("BULWARK_BENCH_OVERLOAD_JSON")
	if path == "" {
		t.Skip("set BULWARK_BENCH_OVERLOAD_JSON to run the full overload bench")
	}
	rep, err := Run(context.Background(), Config{}, os.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
}
