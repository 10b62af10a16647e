package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/ledger/verify"
)

func newLedgerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ledger", Short: "Ledger maintenance: verify invariants, archive old entries"}
	cmd.AddCommand(newLedgerVerifyCmd(), newLedgerArchiveCmd())
	return cmd
}

func newLedgerVerifyCmd() *cobra.Command {
	var db dbFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every ledger invariant; exits non-zero on a violation",
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, _, closeFn, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			rep, err := verify.Run(cmd.Context(), pool)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), rep.String())
			}
			if !rep.OK() {
				return fmt.Errorf("%d invariant violations", len(rep.Violations))
			}
			return nil
		},
	}
	db.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func newLedgerArchiveCmd() *cobra.Command {
	var db dbFlags
	var before, dir string
	cmd := &cobra.Command{
		Use:   "archive --before YYYY-MM-DD",
		Short: "Export finished monthly entry partitions that end on or before DATE to verified files, then drop them",
		Long: `Export every monthly entry partition whose range ends on or before --before to
<dir>/<partition>.jsonl, verify the file against the database, then drop the
partition, recording the file, its row count and SHA-256 in archived_partitions.

Idempotent and crash-safe: rerunning reports months already archived (after
checking their files), completes a month an interrupted run left half done,
and never overwrites an existing archive file. --before must be at least an
hour in the past on the database's clock, so the current month is never
archived.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := time.Parse("2006-01-02", before)
			if err != nil {
				return fmt.Errorf("--before: %w", err)
			}
			pool, _, closeFn, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			done, err := ledger.Archive(cmd.Context(), pool, ledger.ArchiveConfig{Before: t, Dir: dir})
			for _, a := range done {
				what := "archived"
				if a.Already {
					what = "already archived, file checked:"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s .. %s): %d entries -> %s (sha256 %s)\n", what, a.Name,
					a.From.Format("2006-01-02"), a.To.Format("2006-01-02"), a.Rows, a.File, a.SHA256)
			}
			if err == nil && len(done) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no partition ends on or before", before)
			}
			return err
		},
	}
	db.add(cmd)
	cmd.Flags().StringVar(&before, "before", "", "archive partitions whose range ends on or before this date (required)")
	cmd.Flags().StringVar(&dir, "dir", "archive", "directory for the exported files")
	_ = cmd.MarkFlagRequired("before")
	return cmd
}
