package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/client"
	"github.com/bulwark-ledger/bulwark/internal/control"
)

func newControlCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Live tenant settings: keys, get, set, unset, history, presets",
		Long: `Read and change the live settings of the control plane through a running
server's admin API. Changes reach every process within a second.
--tenant '*' addresses the global scope, which applies to every tenant
without an override of its own.`,
	}
	cmd.AddCommand(newControlKeysCmd(), newControlGetCmd(), newControlSetCmd(),
		newControlUnsetCmd(), newControlHistoryCmd(), newControlPresetCmd())
	return cmd
}

// controlFlags are the flags every control subcommand shares.
type controlFlags struct {
	api      apiFlags
	tenant   string
	reason   string
	operator string
	json     bool
}

func (f *controlFlags) add(cmd *cobra.Command, tenant, change bool) {
	f.api.add(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the server's JSON answer")
	if tenant {
		cmd.Flags().StringVar(&f.tenant, "tenant", "", "tenant id, or '*' for the global scope")
		_ = cmd.MarkFlagRequired("tenant")
	}
	if change {
		cmd.Flags().StringVar(&f.reason, "reason", "", "why: recorded in the audit trail")
		cmd.Flags().StringVar(&f.operator, "operator", os.Getenv("USER"), "who: recorded in the audit trail next to the key id")
	}
}

func newControlKeysCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List every setting with its type, default, bounds and documentation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Keys []client.SettingKey `json:"keys"`
			}
			err := f.api.withClient(func(c *client.Client) (err error) {
				out.Keys, err = c.SettingKeys(cmd.Context())
				return err
			})
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tTYPE\tDEFAULT\tRANGE\tDOC")
			for _, k := range out.Keys {
				rng := "-"
				if k.Min != nil && k.Max != nil {
					rng = fmt.Sprintf("[%g, %g]", *k.Min, *k.Max)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Name, k.Type, controlOrDash(k.Default), rng, k.Doc)
			}
			return tw.Flush()
		},
	}
	f.add(cmd, false, false)
	return cmd
}

func newControlGetCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:   "get --tenant ID [KEY...]",
		Short: "Show a tenant's effective settings and where each comes from",
		RunE: func(cmd *cobra.Command, args []string) error {
			var out *client.TenantSettings
			err := f.api.withClient(func(c *client.Client) (err error) {
				out, err = c.Settings(cmd.Context(), f.tenant)
				return err
			})
			if err != nil {
				return err
			}
			if len(args) > 0 {
				byKey := make(map[string]client.Setting, len(out.Settings))
				for _, s := range out.Settings {
					byKey[s.Key] = s
				}
				out.Settings = out.Settings[:0]
				for _, k := range args {
					s, ok := byKey[k]
					if !ok {
						return fmt.Errorf("unknown_setting: %q (bulwark control keys lists them)", k)
					}
					out.Settings = append(out.Settings, s)
				}
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "tenant %s at version %d", out.Tenant, out.Version)
			if len(out.PresetsApplied) > 0 {
				fmt.Fprintf(w, ", presets applied: %s", strings.Join(out.PresetsApplied, ", "))
			}
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE\tDEFAULT")
			for _, s := range out.Settings {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Key, controlOrDash(controlOneLine(s.Value)), s.Source, controlOrDash(controlOneLine(s.Default)))
			}
			return tw.Flush()
		},
	}
	f.add(cmd, true, false)
	return cmd
}

func newControlSetCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:   "set --tenant ID KEY=VALUE... [--reason TEXT]",
		Short: "Set one or more settings atomically (all or nothing)",
		Example: `  bulwark control set --tenant acme tasks.recompute.rate_per_partition=0 --reason "surge"
  bulwark control set --tenant '*' quota.crawler.requests_per_sec=20 quota.crawler.burst=20`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set := make(map[string]any, len(args))
			for _, a := range args {
				k, v, err := control.ParseAssignment(a)
				if err != nil {
					return err
				}
				if _, dup := set[k]; dup {
					return fmt.Errorf("key %q given twice", k)
				}
				set[k] = v
			}
			return controlChange(cmd, &f, func(c *client.Client) (*client.SettingsChange, error) {
				return c.ChangeSettings(cmd.Context(), f.tenant, client.SettingsPatch{Set: set, Reason: f.reason, Operator: f.operator})
			})
		},
	}
	f.add(cmd, true, true)
	return cmd
}

func newControlUnsetCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:   "unset --tenant ID KEY... [--reason TEXT]",
		Short: "Remove overrides so that the global value or the default applies again",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return controlChange(cmd, &f, func(c *client.Client) (*client.SettingsChange, error) {
				return c.ChangeSettings(cmd.Context(), f.tenant, client.SettingsPatch{Unset: args, Reason: f.reason, Operator: f.operator})
			})
		},
	}
	f.add(cmd, true, true)
	return cmd
}

func newControlHistoryCmd() *cobra.Command {
	var (
		f      controlFlags
		key    string
		limit  int
		before int64
	)
	cmd := &cobra.Command{
		Use:   "history [--tenant ID] [--setting KEY]",
		Short: "Show the audit trail of changes, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Entries []client.AuditEntry `json:"entries"`
			}
			err := f.api.withClient(func(c *client.Client) (err error) {
				out.Entries, err = c.SettingHistory(cmd.Context(), client.HistoryQuery{Tenant: f.tenant, Key: key, Limit: limit, Before: before})
				return err
			})
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			controlPrintAudit(cmd.OutOrStdout(), out.Entries, true)
			return nil
		},
	}
	f.add(cmd, false, false)
	cmd.Flags().StringVar(&f.tenant, "tenant", "", "only this tenant ('*' for the global scope)")
	cmd.Flags().StringVar(&key, "setting", "", "only this setting key")
	cmd.Flags().IntVar(&limit, "limit", 50, fmt.Sprintf("entries to show (at most %d)", control.MaxHistory))
	cmd.Flags().Int64Var(&before, "before", 0, "show entries older than this id (paging)")
	return cmd
}

func newControlPresetCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "preset", Short: "List, apply and revert named presets such as surge"}
	var lf controlFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List presets and the values they set",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Presets []client.Preset `json:"presets"`
			}
			err := lf.api.withClient(func(c *client.Client) (err error) {
				out.Presets, err = c.Presets(cmd.Context())
				return err
			})
			if err != nil {
				return err
			}
			if lf.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			for _, p := range out.Presets {
				fmt.Fprintf(w, "%s: %s\n", p.Name, p.Doc)
				for _, a := range p.Values {
					fmt.Fprintf(w, "    %s=%s\n", a.Key, a.Value)
				}
			}
			return nil
		},
	}
	lf.add(list, false, false)
	cmd.AddCommand(list, newControlPresetActionCmd("apply"), newControlPresetActionCmd("revert"))
	return cmd
}

func newControlPresetActionCmd(action string) *cobra.Command {
	var f controlFlags
	short := "Apply a preset to a tenant, remembering the values it replaces"
	if action == "revert" {
		short = "Revert a preset: restore exactly the values it replaced (including unset)"
	}
	cmd := &cobra.Command{
		Use:     action + " NAME --tenant ID [--reason TEXT]",
		Short:   short,
		Example: fmt.Sprintf("  bulwark control preset %s surge --tenant acme --reason \"incident 42\"", action),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := client.PresetRequest{Tenant: f.tenant, Reason: f.reason, Operator: f.operator}
			return controlChange(cmd, &f, func(c *client.Client) (*client.SettingsChange, error) {
				if action == "revert" {
					return c.RevertPreset(cmd.Context(), args[0], r)
				}
				return c.ApplyPreset(cmd.Context(), args[0], r)
			})
		},
	}
	f.add(cmd, true, true)
	return cmd
}

// controlChange sends a change and prints what it changed.
func controlChange(cmd *cobra.Command, f *controlFlags, send func(*client.Client) (*client.SettingsChange, error)) error {
	var out *client.SettingsChange
	err := f.api.withClient(func(c *client.Client) (err error) {
		out, err = send(c)
		return err
	})
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(cmd.OutOrStdout(), out)
	}
	w := cmd.OutOrStdout()
	if len(out.Changes) == 0 {
		fmt.Fprintf(w, "nothing changed (version %d)\n", out.Version)
		return nil
	}
	fmt.Fprintf(w, "version %d\n", out.Version)
	controlPrintAudit(w, out.Changes, false)
	return nil
}

func controlPrintAudit(w io.Writer, entries []client.AuditEntry, long bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if long {
		fmt.Fprintln(tw, "ID\tVERSION\tAT\tTENANT\tKEY\tOLD\tNEW\tWHO\tPRESET\tREASON")
	} else {
		fmt.Fprintln(tw, "TENANT\tKEY\tOLD\tNEW")
	}
	for _, e := range entries {
		if !long {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Tenant, e.Key, controlValueOrUnset(e.OldValue), controlValueOrUnset(e.NewValue))
			continue
		}
		who := e.Actor
		if e.Operator != "" {
			who += " (" + e.Operator + ")"
		}
		preset := controlOrDash(e.Preset)
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Version, e.At.Format("2006-01-02T15:04:05Z07:00"),
			e.Tenant, e.Key, controlValueOrUnset(e.OldValue), controlValueOrUnset(e.NewValue), who, preset, controlOrDash(e.Reason))
	}
	_ = tw.Flush()
}

func controlValueOrUnset(p *string) string {
	if p == nil {
		return "(unset)"
	}
	return controlOrDash(controlOneLine(*p))
}

func controlOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// controlOneLine shortens multi-line or long values (rule tables) for tables.
func controlOneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}
