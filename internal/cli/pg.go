package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/internal/pgserver"
)

func newPGCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "pg", Short: "The embedded PostgreSQL cluster under --data-dir"}
	cmd.AddCommand(newPGStopCmd())
	return cmd
}

func newPGStopCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the embedded PostgreSQL server under --data-dir left running without its bulwark process",
		Long: `Stop the embedded PostgreSQL server under <data-dir>/postgres when no live bulwark
process runs it (an orphan, e.g. from an older build killed with SIGKILL). Does
nothing when none runs; fails when a live process (bulwark serve) runs it: stop
that process instead. make clean runs this before deleting the data directory.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := filepath.Join(dataDir, "postgres")
			if err := pgserver.StopDir(cmd.Context(), pgserver.Config{Dir: dir}); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "no PostgreSQL server runs under", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", envOr("BULWARK_DATA_DIR", ".bulwark"),
		"data directory of the embedded defaults (env BULWARK_DATA_DIR)")
	return cmd
}
