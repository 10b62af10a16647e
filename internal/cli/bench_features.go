package cli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/internal/bench/featurebench"
)

// newBenchFeaturesCmd is `bulwark bench features`, attached under `bulwark bench`.
func newBenchFeaturesCmd() *cobra.Command {
	var cfg featurebench.Config
	var postgres, jsonPath, logLevel string
	var serverLog bool
	cmd := &cobra.Command{
		Use:   "features",
		Short: "Measure the velocity features engine: ingest vs naive and consume-only, reads, evaluate, freshness, memory, pause",
		Long: `Run ` + "`bulwark serve --roles api,features`" + ` as a child process on a fresh database and an
embedded broker, define 20 features (count, sum, min, max of amount and
distinct_count of device, by card, each over 1m, 10m, 1h and 1d) and measure in one
run: ingest events/s to committed state (engine) against a naive per-event
baseline and the consume-only rate of the same topic; p50/p99 of GET
/v1/features/card/{id} and of POST /v1/features/evaluate at a fixed rate while
events arrive at half the engine's maximum; freshness (202 to visible); RSS and
bytes per tracked entity of the server; and how long a backfill takes to stop
after its rate is set to 0. Prints a table with the targets of issue 9
(informative: the command fails only when a run cannot run).
With no --postgres it starts a private PostgreSQL cluster in a temporary
directory and removes it afterwards.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return err
			}
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if serverLog {
				cfg.ServerLog = os.Stderr
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Serve = []string{exe, "serve"}
			dir, url, cleanup, err := benchDatabase(ctx, "bulwark-bench-features-", postgres, "bulwark_bench_features")
			if err != nil {
				return err
			}
			defer cleanup()
			cfg.PostgresURL, cfg.Dir = url, dir
			rep, err := featurebench.Run(ctx, cfg, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			return writeReport(jsonPath, rep)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Entities, "entities", featurebench.DefaultEntities, "distinct entities (cards), drawn with a Zipf distribution")
	f.IntVar(&cfg.Events, "events", featurebench.DefaultEvents, "events of the ingest backlog")
	f.Float64Var(&cfg.ZipfS, "zipf-s", featurebench.DefaultZipfS, "Zipf exponent s (> 1): rank k drawn with probability ∝ (v + k)^-s")
	f.Float64Var(&cfg.ZipfV, "zipf-v", featurebench.DefaultZipfV, "Zipf offset v (>= 1)")
	f.DurationVar(&cfg.Duration, "duration", featurebench.DefaultDuration, "length of the read phase (reads, evaluate, freshness under half the ingest maximum)")
	f.Float64Var(&cfg.ReadRate, "rate", featurebench.DefaultReadRate, "GET reads per second, and evaluate calls per second, in the read phase (open model)")
	f.Float64Var(&cfg.ProbeRate, "probe-rate", featurebench.DefaultProbeRate, "freshness probes per second in the read phase")
	f.DurationVar(&cfg.NaiveDuration, "naive-duration", featurebench.DefaultNaiveDuration, "how long the naive baseline runs")
	f.IntVar(&cfg.NaiveClients, "naive-clients", featurebench.DefaultNaiveClients, "concurrent writers of the naive baseline")
	f.StringVar(&cfg.ServerProfile, "server-cpuprofile", "", "write CPU profiles of the server: over the read phase under ingest to FILE, over the engine's ingest to FILE.ingest")
	f.StringVar(&cfg.ReadIngest, "read-ingest", featurebench.ReadIngestTopic, "how the read phase's events arrive: topic (produced to the events topic, as the ingest maximum is measured) or http (POST /v1/events)")
	f.IntVar(&cfg.Parallelism, "parallelism", 0, "set features.consumer_parallelism (global) before the run; 0 = the server's setting (default 1)")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the workload")
	f.StringVar(&postgres, "postgres", os.Getenv("BULWARK_POSTGRES_URL"), "superuser URL of an existing server (env BULWARK_POSTGRES_URL); empty = a private temporary cluster")
	f.StringVar(&jsonPath, "json", "", "write results as JSON to this file")
	f.StringVar(&logLevel, "log-level", "info", "log level of the benchmark's progress: debug, info, warn, error")
	f.BoolVar(&serverLog, "server-log", false, "pass the server's log (level warn) to stderr")
	return cmd
}
