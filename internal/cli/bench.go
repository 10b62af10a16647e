package cli

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/internal/bench/ledgerbench"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Benchmark programs: measure Bulwark on this machine, side by side with baselines"}
	cmd.AddCommand(newBenchLedgerCmd(), newBenchOverloadCmd(), newBenchCDCCmd(), newBenchExportCmd(), newBenchFeaturesCmd())
	return cmd
}

func newBenchLedgerCmd() *cobra.Command {
	var cfg ledgerbench.Config
	var requests, modes, jsonPath, cpuProfile, logLevel string
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Measure transfers through the HTTP API: commit pipeline vs naive baseline",
		Long: `Measure the ledger through the real HTTP API with concurrent closed-loop clients.
Each mode (pipeline, naive: one database transaction per request with SELECT … FOR
UPDATE) and request type (single transfer, batch of 100) runs on a fresh database
with its own in-process server. Prints a table with the pipeline/naive ratios and
the targets (informative: the command fails only when a run cannot run).
With no --postgres it starts a private PostgreSQL cluster in a temporary
directory and removes it afterwards.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			tuneGC() // as serve does
			cfg.Requests, cfg.Modes = splitList(requests), splitList(modes)
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return err
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			rep, err := ledgerbench.Run(cmd.Context(), cfg, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			return writeReport(jsonPath, rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Workload, "workload", ledgerbench.WorkloadHot, "hot (every transfer to or from one account) or uniform (10,000 accounts)")
	f.IntVar(&cfg.Clients, "clients", 32, fmt.Sprintf("concurrent clients, one request in flight each (at most %d)", ledgerbench.MaxClients))
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured window of each run")
	f.DurationVar(&cfg.Warmup, "warmup", time.Second, "load before the measured window (negative = none)")
	f.StringVar(&jsonPath, "json", "", "write the results as JSON to FILE")
	f.StringVar(&cfg.PostgresURL, "postgres", "", "superuser URL of a PostgreSQL server to create the run databases on; empty = private temporary cluster")
	f.StringVar(&requests, "requests", "single,batch100", "request types, comma-separated: single, batch100")
	f.StringVar(&modes, "modes", "pipeline,naive,client,floor", "modes, comma-separated: pipeline, naive, client (the Go client batching single transfers; request type single only), floor (no server: the cheapest PostgreSQL commits of the same in-flight transfers, the bound of any design)")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the transfer generator")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to FILE (goroutines labelled ledgerbench=client|server)")
	f.StringVar(&logLevel, "log-level", "warn", "log level of the benchmarked servers: debug, info, warn, error")
	cmd.Flags().DurationVar(&cfg.Pipeline.BatchWindow, "batch-window", 0, "pipeline batch window of the benchmarked servers (0 = default, negative = no wait)")
	cmd.Flags().IntVar(&cfg.Pipeline.Committers, "committers", 0, "pipeline committers of the benchmarked servers (0 = default)")
	return cmd
}

func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeReport writes a benchmark's JSON report when path is not empty.
func writeReport(path string, rep interface{ WriteJSON(string) error }) error {
	if path == "" {
		return nil
	}
	if err := rep.WriteJSON(path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
