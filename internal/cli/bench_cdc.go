package cli

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/internal/bench/cdcbench"
)

// newBenchCDCCmd is `bulwark bench cdc`, attached under `bulwark bench`.
func newBenchCDCCmd() *cobra.Command {
	var cfg cdcbench.Config
	var postgres, jsonPath string
	cmd := &cobra.Command{
		Use:   "cdc",
		Short: "Measure the change stream: relayed events/s and latency vs the decode-only bound",
		Long: `Insert --rows rows of about 200 bytes in transactions of 1 to 1,000 rows into a
captured table, then measure in one run: the replication stream decoded alone
(decode_only, the local upper bound) and the relay into the embedded broker up
to a read_committed consumer (relay), in events per second; then commit-to-visible
latency p50/p99 with inserts paced at half the measured relay maximum.
With no --postgres it starts a private PostgreSQL cluster in a temporary
directory and removes it afterwards. Targets: relay ≥ 50% of decode_only, p99 < 500 ms.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			dir, url, cleanup, err := benchDatabase(ctx, "bulwark-bench-cdc-", postgres, "bulwark_bench_cdc")
			if err != nil {
				return err
			}
			defer cleanup()
			cfg.PostgresURL, cfg.Dir = url, filepath.Join(dir, "kafka")
			rep, err := cdcbench.Run(ctx, cfg, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			return writeReport(jsonPath, rep)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Rows, "rows", 100_000, "rows to insert for the throughput phase")
	f.Float64Var(&cfg.LatencySeconds, "latency-seconds", 5, "length of the paced latency phase")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the transaction sizes")
	f.StringVar(&postgres, "postgres", os.Getenv("BULWARK_POSTGRES_URL"), "superuser URL of an existing server (env BULWARK_POSTGRES_URL); empty = a private temporary cluster")
	f.StringVar(&jsonPath, "json", "", "write results as JSON to this file")
	return cmd
}
