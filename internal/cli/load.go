package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/internal/pgserver"
	"github.com/bulwark-ledger/bulwark/internal/rehearsal"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

// errVerdictFailed: the rehearsal ran and its objectives did not hold.
var errVerdictFailed = errors.New("load: verdict fail")

// loadFlags are the flags of bulwark load.
type loadFlags struct {
	cfg      rehearsal.Config
	self     bool
	mix      string
	scenario string
	jsonPath string
}

func newLoadCmd() *cobra.Command {
	var f loadFlags
	cmd := &cobra.Command{
		Use:   "load (--self | --url URL) (--admin-key K | --key K)",
		Short: "Rehearse a surge: find the capacity, hold 1x-10x of it, judge the objectives",
		Long: `Finds the capacity of payments (doubling an open-loop arrival rate until their p99
or failure rate crosses its objective), then holds each factor of it (1x, 2x, 4x, 10x)
with a mix of classes, optionally applying a control preset at one stage and reverting it
after. Prints progress to stderr once a second, a table to stdout, and a verdict: at
--at (4x), payments must succeed --objective-success of the time with p99 at most
--objective-p99-ratio times their p99 at 1x. Exit 1 when the verdict fails, 2 on bad
input (refused before any load). See docs/load.md.`,
		Example: `  bulwark load --self --step-duration 1s --stage-duration 2s --preset surge --preset-at 10 --at 4,10
  bulwark load --url http://127.0.0.1:8080 --admin-key "$BULWARK_ADMIN_KEY" --json load.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: ExitBadInput, err: err}
	})
	f.add(cmd)
	return cmd
}

func (f *loadFlags) add(cmd *cobra.Command) {
	fl, c := cmd.Flags(), &f.cfg
	fl.BoolVar(&f.self, "self", false, "start a private server (embedded PostgreSQL in a temporary directory) and rehearse against it")
	fl.StringVar(&c.URL, "url", "", "base URL of the Bulwark to rehearse against")
	fl.StringVar(&c.AdminKey, "admin-key", os.Getenv("BULWARK_ADMIN_KEY"), "admin key: create a tenant, key and accounts for the run (env BULWARK_ADMIN_KEY)")
	fl.StringArrayVar(&c.Keys, "key", nil, "tenant key to load instead of creating a tenant, repeatable (accounts load-0… are created in each key's tenant)")
	fl.StringVar(&f.mix, "mix", "", "traffic mix class=weight,… of payments, reads, batch, crawler (default payments=70,reads=25,crawler=5)")
	fl.StringVar(&f.scenario, "scenario", "", "JSON scenario file (mix, factors, durations, preset); flags win over it")
	fl.DurationVar(&c.StepDuration, "step-duration", 2*time.Second, "duration of each capacity search step")
	fl.DurationVar(&c.StageDuration, "stage-duration", 5*time.Second, "duration of each stage")
	fl.Float64SliceVar(&c.Factors, "factors", []float64{1, 2, 4, 10}, "multiples of the capacity to hold, in order (1 required)")
	fl.StringVar(&c.Preset, "preset", "", "control preset to apply during one stage (e.g. surge); needs the admin key")
	fl.Float64Var(&c.PresetAt, "preset-at", 10, "factor of the stage the preset is applied at")
	fl.Float64Var(&c.P99Ratio, "objective-p99-ratio", 2, "payments p99 at --at must be at most this times their p99 at 1x")
	fl.Float64Var(&c.Success, "objective-success", 1, "payments success rate at --at must be at least this (0-1)")
	fl.Float64SliceVar(&c.At, "at", []float64{4}, "factors the objectives are judged at")
	fl.Float64Var(&c.StartRate, "start-rate", 25, "first rate of the capacity search, per second")
	fl.Float64Var(&c.MaxRate, "max-rate", 10000, "highest rate of the capacity search, per second")
	fl.DurationVar(&c.CapacityP99, "capacity-p99", 100*time.Millisecond, "payments p99 objective of the capacity search")
	fl.Float64Var(&c.CapacityErrorRate, "capacity-error-rate", 0.01, "payments not-achieved share objective of the capacity search")
	fl.IntVar(&c.MaxInFlight, "max-inflight", 2000, "requests outstanding at most; arrivals beyond are dropped")
	fl.DurationVar(&c.RequestTimeout, "request-timeout", 5*time.Second, "timeout of one request (then it is an error)")
	fl.IntVar(&c.Accounts, "accounts", 16, "accounts the payments and reads spread over")
	fl.Uint64Var(&c.Seed, "seed", 1, "seed of the class choice")
	fl.StringVar(&f.jsonPath, "json", "", "write the report as JSON to FILE")
}

// config builds the rehearsal config: defaults, then the scenario, then
// the flags given on the command line.
func (f *loadFlags) config(cmd *cobra.Command) (rehearsal.Config, error) {
	if f.self == (f.cfg.URL != "") {
		return f.cfg, errors.New("give exactly one of --self and --url")
	}
	var cfg rehearsal.Config
	if f.scenario != "" {
		file, err := os.Open(f.scenario)
		if err != nil {
			return cfg, fmt.Errorf("scenario: %w", err)
		}
		defer file.Close()
		if err := rehearsal.ParseScenario(file, &cfg); err != nil {
			return cfg, fmt.Errorf("scenario %s: %w", f.scenario, err)
		}
	}
	fromScenario := cfg
	cfg = f.cfg
	cfg.Mix = fromScenario.Mix
	changed := cmd.Flags().Changed
	if v := fromScenario.StepDuration; v != 0 && !changed("step-duration") {
		cfg.StepDuration = v
	}
	if v := fromScenario.StageDuration; v != 0 && !changed("stage-duration") {
		cfg.StageDuration = v
	}
	if v := fromScenario.Factors; v != nil && !changed("factors") {
		cfg.Factors = v
	}
	if fromScenario.Preset != "" && !changed("preset") {
		cfg.Preset, cfg.PresetAt = fromScenario.Preset, fromScenario.PresetAt
	}
	if len(cfg.Keys) > 0 && !changed("admin-key") {
		cfg.AdminKey = "" // BULWARK_ADMIN_KEY is not asked for with tenant keys
	}
	if f.mix != "" {
		mix, err := rehearsal.ParseMix(f.mix)
		if err != nil {
			return cfg, err
		}
		cfg.Mix = mix
	}
	if f.self {
		if changed("admin-key") || len(cfg.Keys) > 0 {
			return cfg, errors.New("--self creates its own tenant: give no --admin-key or --key")
		}
		// Placeholders for Validate, before the server starts; run sets
		// the real ones.
		cfg.URL, cfg.AdminKey = "http://127.0.0.1:0", "pending"
	}
	cfg.Progress = cmd.ErrOrStderr()
	return cfg, nil
}

func (f *loadFlags) run(cmd *cobra.Command) (err error) {
	cfg, err := f.config(cmd)
	if err != nil {
		return &exitError{code: ExitBadInput, err: err}
	}
	ctx := cmd.Context()
	if f.self {
		cfg.EnsureDefaults()
		if err := cfg.Validate(); err != nil { // before starting a server
			return &exitError{code: ExitBadInput, err: err}
		}
		url, key, stop, serr := startSelf(ctx)
		if serr != nil {
			return fmt.Errorf("--self: %w", serr)
		}
		defer func() {
			if serr := stop(); serr != nil && err == nil {
				err = fmt.Errorf("--self: stop the private server: %w", serr)
			}
		}()
		cfg.URL, cfg.AdminKey = url, key
		fmt.Fprintln(cmd.ErrOrStderr(), "private server at", url)
	}
	rep, err := rehearsal.Run(ctx, cfg)
	if errors.Is(err, rehearsal.ErrBadInput) {
		return &exitError{code: ExitBadInput, err: err}
	}
	if err != nil {
		return err
	}
	if err := rep.WriteTable(cmd.OutOrStdout()); err != nil {
		return err
	}
	if f.jsonPath != "" {
		if err := rep.WriteJSON(f.jsonPath); err != nil {
			return err
		}
	}
	if rep.Verdict != rehearsal.VerdictPass {
		return &exitError{code: ExitFailure, err: errVerdictFailed}
	}
	return nil
}

// startSelf runs a private server on loopback (api and workers roles; no
// change stream) on an embedded cluster in a temporary directory, with a
// fresh admin key. stop shuts it down and removes the
// directory.
func startSelf(ctx context.Context) (url, adminKey string, stop func() error, err error) {
	dir, err := pgserver.TempDir("bulwark-load-")
	if err != nil {
		return "", "", nil, err
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	adminKey = "bwa_" + hex.EncodeToString(raw[:])
	sctx, cancel := context.WithCancel(ctx)
	ready, done := make(chan string, 1), make(chan error, 1)
	cfg := server.Config{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), AdminKey: adminKey,
		// Exports run so that the exports class's jobs are worked off; the
		// features routes (reads, evaluate without record) need only the
		// api role.
		Roles:  []string{server.RoleAPI, server.RoleWorkers, server.RoleExports},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Ready:  func(a string) { ready <- a }}
	go func() { done <- server.Run(sctx, cfg) }()
	stop = func() error {
		cancel()
		err := <-done
		return errors.Join(err, os.RemoveAll(dir))
	}
	select {
	case a := <-ready:
		return "http://" + a, adminKey, stop, nil
	case err := <-done:
		cancel()
		_ = os.RemoveAll(dir)
		return "", "", nil, fmt.Errorf("private server: %w", err)
	}
}
