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
	for _, add := range commands {
		root.AddCommand(add())
	}
	return root
}

// commands lists the constructors of the top-level commands; each domain's
// file appends its own in a var block so files stay independent.
var commands []func() *cobra.Command

// register adds a top-level command constructor; files call it from a
// package-level var so that each domain's commands live in its own file.
func register(f func() *cobra.Command) struct{} {
	commands = append(commands, f)
	return struct{}{}
}
