package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/internal/bench/overloadbench"
)

func newBenchOverloadCmd() *cobra.Command {
	var cfg overloadbench.Config
	var jsonPath string
	cmd := &cobra.Command{
		Use:   "overload --json FILE",
		Short: "Offer 1x-10x the capacity of a limited backend with admission control on and off",
		Long: `Starts a server on 127.0.0.1 whose backend has a fixed capacity (a concurrency
semaphore and a service time), measures that capacity, then offers 1x, 2x, 5x and 10x
of it with a mix of classes (payments at the top priority, normal reads, crawlers),
once with admission control on and once off, in the same run. Prints a table and
writes JSON. A full run takes about a minute; --quick about 12 s.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := overloadbench.Run(cmd.Context(), cfg, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			if jsonPath != "" {
				if err := rep.WriteJSON(jsonPath); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "wrote", jsonPath)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&jsonPath, "json", "", "write the report as JSON to FILE")
	cmd.Flags().BoolVar(&cfg.Quick, "quick", false, "short phases (about 12 s in all)")
	cmd.Flags().IntVar(&cfg.BackendConcurrency, "backend-concurrency", 0, "requests the limited backend serves at once (0 = 16)")
	cmd.Flags().DurationVar(&cfg.ServiceTime, "service-time", 0, "backend service time per request (0 = default)")
	cmd.Flags().DurationVar(&cfg.PhaseDuration, "phase", 0, "duration of each load phase (0 = default)")
	return cmd
}
