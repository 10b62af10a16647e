package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/internal/bench/exportbench"
	"github.com/bulwark-ledger/bulwark/internal/pgserver"
)

// newBenchExportCmd is `bulwark bench export`, attached under `bulwark bench`.
func newBenchExportCmd() *cobra.Command {
	var cfg exportbench.Config
	var postgres, jsonPath string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Measure exports: rows/s vs COPY, peak RSS, isolation of huge exports",
		Long: `Seed --rows entries (in SQL) and measure in one run: the rows/s of one export
in CSV and in JSONL against COPY (SELECT …) TO STDOUT of the same rows into a file
(the physical bound); the peak RSS of this process during the CSV export; and the
p99 latency of small exports and of single-transfer ledger writes alone, while 4
huge exports run (own queue, pool and rate), and while they run with isolation
off (one queue and pool). With no --postgres it starts a private PostgreSQL
cluster in a temporary directory and removes it afterwards.
Targets: CSV ≥ 80% of COPY, RSS ≤ 64 MB, both p99s within 1.5× of alone.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			tuneGC() // as serve does
			dir, url, cleanup, err := benchDatabase(ctx, "bulwark-bench-export-", postgres, "bulwark_bench_export")
			if err != nil {
				return err
			}
			defer cleanup()
			cfg.PostgresURL, cfg.Dir = url, filepath.Join(dir, "exports")
			rep, err := exportbench.Run(ctx, cfg, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			return writeReport(jsonPath, rep)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Rows, "rows", 2_000_000, "entries of the big tenant (at least 20,000)")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured window of each isolation mode")
	f.Float64Var(&cfg.HugeRate, "huge-rate", 4, "tasks.export_huge.rate_per_partition of the huge exports' tenant during the isolation phase, in chunks of 10,000 rows per second (4: four tenants' huge exports at the default rate of 1)")
	f.StringVar(&postgres, "postgres", os.Getenv("BULWARK_POSTGRES_URL"), "superuser URL of an existing server (env BULWARK_POSTGRES_URL); empty = a private temporary cluster")
	f.StringVar(&jsonPath, "json", "", "write results as JSON to this file")
	return cmd
}

// benchDatabase gives a benchmark a scratch directory and a fresh database
// name on the server at postgres, or on a private cluster started in the
// scratch directory when postgres is empty. cleanup drops the database,
// stops the cluster and removes the directory.
func benchDatabase(ctx context.Context, prefix, postgres, name string) (dir, url string, cleanup func(), err error) {
	dir, err = pgserver.TempDir(prefix)
	if err != nil {
		return "", "", nil, err
	}
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	undo = append(undo, func() { os.RemoveAll(dir) })
	base := postgres
	if base == "" {
		c, err := pgserver.Start(ctx, pgserver.Config{Dir: filepath.Join(dir, "pg")})
		if err != nil {
			cleanup()
			return "", "", nil, err
		}
		undo = append(undo, func() {
			if err := c.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "bench: stop the scratch cluster:", err)
			}
		})
		base = c.URL("postgres")
	}
	url, drop, err := scratchDatabase(ctx, base, name)
	if err != nil {
		cleanup()
		return "", "", nil, err
	}
	undo = append(undo, drop)
	return dir, url, cleanup, nil
}
