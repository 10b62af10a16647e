package ledgerbench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/bench/ledgerbench"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestRunHotShape runs the whole benchmark briefly and checks the report's
// shape and correctness, never its speed (STYLE.md rule 20).
func TestRunHotShape(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five servers: skipped in -short only; make test runs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := ledgerbench.Run(ctx, ledgerbench.Config{
		Workload:    ledgerbench.WorkloadHot,
		Clients:     4,
		Duration:    time.Second,
		Warmup:      200 * time.Millisecond,
		PostgresURL: pgtest.ServerURL(t, "postgres"),
	}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 7 {
		t.Fatalf("%d results, want 7 (3 modes × 2 request types, and client single)", len(rep.Results))
	}
	seen := map[string]bool{}
	for _, r := range rep.Results {
		seen[r.Mode+"/"+r.Request] = true
		if r.Workload != "hot" || r.Clients != 4 {
			t.Errorf("%s/%s: workload %q clients %d", r.Mode, r.Request, r.Workload, r.Clients)
		}
		if r.Transfers <= 0 || r.TransfersPerSec <= 0 || r.P99Ms < r.P50Ms || r.P50Ms <= 0 {
			t.Errorf("%s/%s: %d transfers, %.1f/s, p50 %.3f ms, p99 %.3f ms", r.Mode, r.Request,
				r.Transfers, r.TransfersPerSec, r.P50Ms, r.P99Ms)
		}
		if r.DurationS < time.Second.Seconds() || r.Requests < 4 {
			t.Errorf("%s/%s: window %.3fs with %d requests, want >= 1s and >= 1 request per client",
				r.Mode, r.Request, r.DurationS, r.Requests)
		}
		if (r.Mode == "floor") != (r.Committers > 0) {
			t.Errorf("%s/%s: committers %d, want > 0 in mode floor only", r.Mode, r.Request, r.Committers)
		}
		if r.Errors != 0 || len(r.Violations) != 0 {
			t.Errorf("%s/%s: %d errors (first %q), violations %v", r.Mode, r.Request, r.Errors, r.FirstError, r.Violations)
		}
	}
	if !strings.Contains(out.String(), "client single >= 80% of pipeline batch100") {
		t.Errorf("no client target line in:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "floor (PostgreSQL alone, 4 transfers in flight): single") ||
		!strings.Contains(out.String(), "% of pipeline batch100, ") || !strings.Contains(out.String(), "% of floor batch100;") {
		t.Errorf("no floor line in:\n%s", out.String())
	}
	for _, k := range []string{"pipeline/single", "pipeline/batch100", "naive/single", "naive/batch100", "client/single", "floor/single", "floor/batch100"} {
		if !seen[k] {
			t.Errorf("no result for %s", k)
		}
	}

	path := filepath.Join(t.TempDir(), "hot.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Results []map[string]any `json:"results"`
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"workload", "mode", "request", "clients", "transfers_per_sec", "p50_ms", "p99_ms", "errors"} {
		if _, ok := doc.Results[0][key]; !ok {
			t.Errorf("JSON result lacks %q: %s", key, b)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []ledgerbench.Config{
		{Workload: "cold"},
		{Clients: ledgerbench.MaxClients + 1},
		{Duration: -time.Second},
		{Requests: []string{"batch7"}},
		{Modes: []string{"naive", "naive"}},
		{Modes: []string{"client"}, Requests: []string{"batch100"}},
	} {
		if _, err := ledgerbench.Run(context.Background(), cfg, &bytes.Buffer{}); err == nil {
			t.Errorf("Run(%+v) accepted an invalid config", cfg)
		}
	}
}

// TestFloorUniform runs mode floor alone on the uniform workload, where
// its committers can deadlock on one another and must retry, and checks
// that it wrote exactly what it counted (floorCheck: no violations).
func TestFloorUniform(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := ledgerbench.Run(ctx, ledgerbench.Config{
		Workload:    ledgerbench.WorkloadUniform,
		Modes:       []string{ledgerbench.ModeFloor},
		Clients:     8,
		Duration:    500 * time.Millisecond,
		Warmup:      -1,
		PostgresURL: pgtest.ServerURL(t, "postgres"),
	}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("%d results, want floor single and floor batch100", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Transfers <= 0 || r.Committers <= 0 || r.Errors != 0 || len(r.Violations) != 0 {
			t.Errorf("floor %s: %d transfers, %d committers, %d errors (first %q), violations %v",
				r.Request, r.Transfers, r.Committers, r.Errors, r.FirstError, r.Violations)
		}
	}
	if !strings.Contains(out.String(), "floor (PostgreSQL alone, 8 transfers in flight)") {
		t.Errorf("no floor line in:\n%s", out.String())
	}
}
