// Package cli defines the cobra commands of the bulwark binary. Each file
// holds the commands of one domain; they parse flags and call the domain
// packages, and hold no logic of their own.
package cli

import (
	"github.com/spf13/cobra"
)

// Root returns the bulwark command tree.
func Root() *cobra.Command {
	root := &cobra.Command{
		Use:           "bulwark",
		Short:         "Bulwark: a ledger and event platform that stays correct under surges",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Every top-level command, listed here rather than registered by
	// package-level side effects: the tree is what this function says.
	root.AddCommand(
		newServeCmd(),
		newTenantCmd(),
		newAPIKeyCmd(),
		newLedgerCmd(),
		newControlCmd(),
		newCDCCmd(),
		newFeaturesCmd(),
		newPGCmd(),
		newBenchCmd(),
		newLoadCmd(),
		newExportCmd(),
	)
	return root
}
