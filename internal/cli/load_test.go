package cli_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
	"github.com/bulwark-ledger/bulwark/internal/cli"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

// loadReport is the part of bulwark load's JSON the tests read.
type loadReport struct {
	CapacityPerSec float64 `json:"capacity_per_sec"`
	Verdict        string  `json:"verdict"`
	Checks         []struct {
		LoadFactor float64 `json:"load_factor"`
		Pass       bool    `json:"pass"`
		Why        string  `json:"why"`
	} `json:"checks"`
	Stages []struct {
		LoadFactor     float64          `json:"load_factor"`
		Class          string           `json:"class"`
		Preset         string           `json:"preset"`
		DurationSec    float64          `json:"duration_s"`
		Offered        int64            `json:"offered"`
		Achieved       int64            `json:"achieved"`
		OfferedPerSec  float64          `json:"offered_per_sec"`
		AchievedPerSec float64          `json:"achieved_per_sec"`
		SuccessRate    float64          `json:"success_rate"`
		P99Ms          float64          `json:"p99_ms"`
		Rejected       int64            `json:"rejected"`
		RejectedByCode map[string]int64 `json:"rejected_by_code"`
		Dropped        int64            `json:"dropped"`
		Errors         int64            `json:"errors"`
	} `json:"stages"`
}

// TestLoadSelf is the short form of `bulwark load --self` (a few seconds):
// a private server, a capacity search capped at 80/s, stages 1× and 4×
// with the surge preset at 4×, and a p99 objective no server can meet, so
// the verdict must fail with exit code 1 while the report's numbers add up.
func TestLoadSelf(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, scenario := filepath.Join(dir, "load.json"), filepath.Join(dir, "scenario.json")
	// The scenario gives the mix, the factors and the preset; the flag's
	// stage duration wins over its 10 s.
	if err := os.WriteFile(scenario, []byte(`{"mix": {"payments": 60, "reads": 10, "crawler": 5, "features": 10, "evaluate": 10, "exports": 5},
		"factors": [1, 4], "stage_duration": "10s", "preset": "surge", "preset_at": 4}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "load", "--self", "--scenario", scenario, "--step-duration", "300ms", "--stage-duration", "600ms",
		"--start-rate", "20", "--max-rate", "80", "--at", "4", "--objective-p99-ratio", "0.001", "--json", path,
		// A busy test machine must not fail the capacity search.
		"--capacity-p99", "10s", "--capacity-error-rate", "0.5")
	if code := cli.ExitCode(err); code != cli.ExitFailure {
		t.Fatalf("exit code %d (%v), want %d for a failed verdict:\n%s", code, err, cli.ExitFailure, out)
	}
	b, rerr := os.ReadFile(path)
	if rerr != nil {
		t.Fatalf("no report: %v\n%s", rerr, out)
	}
	var rep loadReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != "fail" || len(rep.Checks) != 1 || rep.Checks[0].Pass || rep.Checks[0].Why == "" {
		t.Errorf("verdict %s, checks %+v: want a failed check at 4×", rep.Verdict, rep.Checks)
	}
	if rep.CapacityPerSec < 20 || rep.CapacityPerSec > 80 {
		t.Errorf("capacity %g/s: want within the search's 20-80/s", rep.CapacityPerSec)
	}
	if len(rep.Stages) != 12 {
		t.Fatalf("%d stage rows, want 2 factors × 6 classes", len(rep.Stages))
	}
	var offered, featureCalls int64
	for _, s := range rep.Stages {
		var byCode int64
		for _, n := range s.RejectedByCode {
			byCode += n
		}
		if s.Offered != s.Achieved+s.Rejected+s.Dropped+s.Errors || s.Rejected != byCode {
			t.Errorf("%g× %s: offered %d != achieved %d + rejected %d (by code %d) + dropped %d + errors %d",
				s.LoadFactor, s.Class, s.Offered, s.Achieved, s.Rejected, byCode, s.Dropped, s.Errors)
		}
		if s.Offered > 0 && s.SuccessRate != float64(s.Achieved)/float64(s.Offered) {
			t.Errorf("%g× %s: success rate %g != %d/%d", s.LoadFactor, s.Class, s.SuccessRate, s.Achieved, s.Offered)
		}
		if s.DurationSec != 0.6 {
			t.Errorf("%g× %s: stage of %gs, want the flag's 0.6s", s.LoadFactor, s.Class, s.DurationSec)
		}
		if wantPreset := s.LoadFactor == 4; (s.Preset == "surge") != wantPreset {
			t.Errorf("%g× %s: preset %q", s.LoadFactor, s.Class, s.Preset)
		}
		offered += s.Offered
		// The feature, evaluate and export calls exist and answer: a
		// refusal of the route or a bad body would count as an error.
		if (s.Class == "features" || s.Class == "evaluate" || s.Class == "exports") && s.Errors != 0 {
			t.Errorf("%g× %s: %d errors", s.LoadFactor, s.Class, s.Errors)
		}
		if s.Class == "features" || s.Class == "evaluate" {
			featureCalls += s.Achieved
		}
	}
	if featureCalls == 0 {
		t.Error("no feature read or evaluate succeeded")
	}
	if offered == 0 {
		t.Error("no arrival offered")
	}
	if !strings.Contains(out, "verdict: fail") || !strings.Contains(out, "payments") {
		t.Errorf("table:\n%s", out)
	}
}

// TestLoadBadInput: each bad input is refused with exit code 2 and a clear
// message, before any load.
func TestLoadBadInput(t *testing.T) {
	t.Parallel()
	url := startLoadServer(t)
	dir := t.TempDir()
	badScenario := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badScenario, []byte(`{"mix": {"payments": 1}, "stages": 4}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--self", "--mix", "payments=70,features=30,features=1"}, `class "features" given twice`},
		{[]string{"--self", "--mix", "payments=70,emails=30"}, `unknown class "emails"`},
		{[]string{"--self", "--scenario", badScenario}, `unknown field "stages"`},
		{[]string{"--self", "--objective-success", "1.5"}, "objective success 1.5"},
		{[]string{"--self", "--at", "3"}, "objective at 3: not one of the factors"},
		{[]string{"--self", "--factors", "x"}, "invalid argument"},
		{[]string{"--url", "http://127.0.0.1:1", "--admin-key", "k"}, "does not answer"},
		{[]string{"--url", url, "--admin-key", "bwa_wrong"}, "admin key refused"},
		{[]string{"--url", url, "--key", "bwk_wrong", "--admin-key", ""}, "tenant key refused"},
		{[]string{"--url", url, "--admin-key", loadAdminKey, "--preset", "calm", "--preset-at", "10"}, `unknown preset "calm"`},
	} {
		start := time.Now()
		out, err := run(t, append([]string{"load"}, tc.args...)...)
		if code := cli.ExitCode(err); code != cli.ExitBadInput || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: exit %d, %v; want %d with %q", tc.args, code, err, cli.ExitBadInput, tc.want)
		}
		if strings.Contains(out, "capacity step") || time.Since(start) > 15*time.Second {
			t.Errorf("%v: load was sent before the refusal:\n%s", tc.args, out)
		}
	}
}

// TestLoadTenantKeys: with tenant keys of two tenants (no admin key) the
// run creates the accounts in both and takes the keys in turn.
func TestLoadTenantKeys(t *testing.T) {
	t.Parallel()
	url := startLoadServer(t)
	admin, err := client.New(url, loadAdminKey, client.WithoutBatching())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	args := []string{"load", "--url", url, "--admin-key", "", "--mix", "payments=3,reads=1",
		"--step-duration", "200ms", "--stage-duration", "300ms", "--start-rate", "20", "--max-rate", "40",
		"--factors", "1", "--at", "1", "--capacity-p99", "10s", "--capacity-error-rate", "0.5"}
	var keys []string
	for _, tenant := range []string{"acme", "globex"} {
		if _, err := admin.CreateTenant(ctx, tenant, tenant); err != nil {
			t.Fatal(err)
		}
		k, err := admin.CreateKey(ctx, tenant, client.KeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "--key", k.Key)
		keys = append(keys, k.Key)
	}
	out, err := run(t, args...)
	if code := cli.ExitCode(err); code != 0 && code != cli.ExitFailure { // the verdict is the machine's
		t.Fatalf("exit %d (%v):\n%s", code, err, out)
	}
	for _, key := range keys {
		c, err := client.New(url, key, client.WithoutBatching())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Account(ctx, "load-1"); err != nil {
			t.Errorf("the run's account in the tenant of %s…: %v", key[:8], err)
		}
	}
	if !strings.Contains(out, "verdict:") {
		t.Errorf("no verdict:\n%s", out)
	}
}

const loadAdminKey = "bwa_load_test_admin"

// startLoadServer runs a server (api role) on a fresh database and
// returns its URL.
func startLoadServer(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	cfg := server.Config{Addr: "127.0.0.1:0", PostgresURL: pgtest.NewDB(t), AdminKey: loadAdminKey,
		Roles: []string{server.RoleAPI}, DataDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Ready:  func(a string) { ready <- a }}
	go func() { done <- server.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	select {
	case a := <-ready:
		return "http://" + a
	case err := <-done:
		t.Fatalf("server: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("server did not start")
	}
	return ""
}
