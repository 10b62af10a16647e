package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/client"
)

// exportFlags are the flags of the export commands: a server and a tenant
// API key (exports belong to a tenant; the admin key has none).
type exportFlags struct {
	server string
	key    string
}

func (f *exportFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", envOr("BULWARK_SERVER", "http://127.0.0.1:8080"),
		"base URL of a running bulwark (env BULWARK_SERVER)")
	cmd.Flags().StringVar(&f.key, "key", os.Getenv("BULWARK_API_KEY"), "tenant API key (env BULWARK_API_KEY)")
}

// run calls fn with a client of the server, closed afterwards.
func (f *exportFlags) run(fn func(c *client.Client) error) error {
	if f.key == "" {
		return errors.New("exports belong to a tenant: pass --key or set BULWARK_API_KEY to a tenant API key")
	}
	c, err := client.New(f.server, f.key, client.WithoutBatching())
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

func newExportCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "export", Short: "Export entries, transactions or accounts to files (docs/exports.md)"}
	cmd.AddCommand(newExportCreateCmd(), newExportStatusCmd(), newExportListCmd(), newExportCancelCmd(), newExportDownloadCmd(),
		newExportActiveCmd(), newExportAdminCancelCmd())
	return cmd
}

func newExportCreateCmd() *cobra.Command {
	var f exportFlags
	var req client.ExportRequest
	var from, to string
	var wait bool
	cmd := &cobra.Command{
		Use:   "create --kind entries|transactions|accounts [--account ID] [--from T --to T]",
		Short: "Queue an export (an identical one queued or running is returned instead)",
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, t := range []struct {
				s   string
				dst **time.Time
			}{{from, &req.From}, {to, &req.To}} {
				if t.s == "" {
					continue
				}
				v, err := parseTime(t.s)
				if err != nil {
					return err
				}
				*t.dst = &v
			}
			return f.run(func(c *client.Client) error {
				e, err := c.CreateExport(cmd.Context(), req)
				if err != nil {
					return err
				}
				if !wait {
					return printJSON(cmd.OutOrStdout(), e)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "export %s queued (%s queue, ~%d rows)\n", e.ID, e.Queue, e.RowsEstimated)
				return follow(cmd.Context(), c, e.ID, cmd.OutOrStdout(), cmd.ErrOrStderr())
			})
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&req.Kind, "kind", "", "entries, transactions or accounts")
	fl.StringVar(&req.AccountID, "account", "", "entries of this account only")
	fl.StringVar(&from, "from", "", "start of the range (RFC 3339 or YYYY-MM-DD), inclusive")
	fl.StringVar(&to, "to", "", "end of the range (RFC 3339 or YYYY-MM-DD), exclusive")
	fl.StringVar(&req.Format, "format", "csv", "csv or jsonl")
	fl.StringVar(&req.Compression, "compression", "none", "none or gzip")
	fl.BoolVar(&wait, "wait", false, "follow the export until it ends (progress bar on a terminal)")
	return cmd
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return t, fmt.Errorf("time %q: want RFC 3339 or YYYY-MM-DD", s)
	}
	return t, nil
}

func newExportStatusCmd() *cobra.Command {
	var f exportFlags
	var followIt bool
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show an export's state, progress and manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(func(c *client.Client) error {
				if followIt {
					return follow(cmd.Context(), c, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
				}
				e, err := c.Export(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), e)
			})
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&followIt, "follow", false, "follow the export until it ends (progress bar on a terminal)")
	return cmd
}

// followPoll is the status poll period of --follow and --wait.
const followPoll = 500 * time.Millisecond

// follow polls an export until it ends: a progress bar when errOut is a
// terminal, else a line per change of progress; then the final status as
// JSON on out. A failed or cancelled export is an error.
func follow(ctx context.Context, c *client.Client, id string, out, errOut io.Writer) error {
	tty := isTerminal(errOut)
	last := ""
	for {
		e, err := c.Export(ctx, id)
		if err != nil {
			return err
		}
		line := progressLine(e)
		switch {
		case tty:
			fmt.Fprintf(errOut, "\r\033[K%s", line)
		case line != last:
			fmt.Fprintln(errOut, line)
		}
		last = line
		if e.Finished() {
			if tty {
				fmt.Fprintln(errOut)
			}
			if err := printJSON(out, e); err != nil {
				return err
			}
			if e.State != "succeeded" {
				return fmt.Errorf("export %s %s %s", e.ID, e.State, e.Error)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(followPoll):
		}
	}
}

// barWidth is the progress bar's width in characters.
const barWidth = 30

func progressLine(e *client.Export) string {
	filled := int(e.ProgressPercent / 100 * barWidth)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled)
	return fmt.Sprintf("[%s] %5.1f%%  %d/%d rows  %d bytes  %s", bar, e.ProgressPercent, e.RowsWritten,
		max(e.RowsEstimated, e.RowsWritten), e.Bytes, e.State)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newExportListCmd() *cobra.Command {
	var f exportFlags
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tenant's newest exports",
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(func(c *client.Client) error {
				list, err := c.Exports(cmd.Context(), limit)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%-36s  %-12s  %-5s  %-9s  %12s  %6s  %s\n", "ID", "KIND", "FMT", "STATE", "ROWS", "%", "CREATED")
				for _, e := range list {
					fmt.Fprintf(w, "%-36s  %-12s  %-5s  %-9s  %12d  %6.1f  %s\n", e.ID, e.Kind, e.Format, e.State,
						e.RowsWritten, e.ProgressPercent, e.CreatedAt.UTC().Format(time.RFC3339))
				}
				return nil
			})
		},
	}
	f.add(cmd)
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many (1 to 100)")
	return cmd
}

func newExportCancelCmd() *cobra.Command {
	var f exportFlags
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a queued or running export",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(func(c *client.Client) error {
				e, err := c.CancelExport(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), e)
			})
		},
	}
	f.add(cmd)
	return cmd
}

func newExportDownloadCmd() *cobra.Command {
	var f exportFlags
	var out string
	cmd := &cobra.Command{
		Use:   "download ID [-o FILE]",
		Short: "Download a succeeded export (resumes a partial FILE; checks the SHA-256)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(func(c *client.Client) error {
				e, err := c.Export(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if e.Manifest == nil {
					return fmt.Errorf("export %s is %s: nothing to download", e.ID, e.State)
				}
				if out == "" {
					out = e.Manifest.FileName
				}
				errOut := cmd.ErrOrStderr()
				tty := isTerminal(errOut)
				progress := func(done, total int64) {
					if tty {
						fmt.Fprintf(errOut, "\r\033[K%d/%d bytes", done, total)
					}
				}
				if err := c.DownloadExport(cmd.Context(), e, out, progress); err != nil {
					return err
				}
				if tty {
					fmt.Fprintln(errOut)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d rows, %d bytes, sha256 %s\n", out, e.Manifest.Rows, e.Manifest.Bytes, e.Manifest.SHA256)
				return nil
			})
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (default: the manifest's file name)")
	return cmd
}

// newExportActiveCmd lists every tenant's queued and running exports with
// the admin key (what the console's exports section shows).
func newExportActiveCmd() *cobra.Command {
	var f apiFlags
	var tenant string
	var limit int
	cmd := &cobra.Command{
		Use:   "active [--tenant ID] [--limit N]",
		Short: "List the queued and running exports of every tenant (admin key)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(func(c *client.Client) error {
				list, err := c.ActiveExports(cmd.Context(), tenant, limit)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%-20s  %-36s  %-12s  %-6s  %-9s  %12s  %6s  %s\n", "TENANT", "ID", "KIND", "QUEUE", "STATE", "ROWS", "%", "CREATED")
				for _, e := range list {
					fmt.Fprintf(w, "%-20s  %-36s  %-12s  %-6s  %-9s  %12d  %6.1f  %s\n", e.Tenant, e.ID, e.Kind, e.Queue, e.State,
						e.RowsWritten, e.ProgressPercent, e.CreatedAt.UTC().Format(time.RFC3339))
				}
				return nil
			})
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's exports")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many (1 to 100; default 100)")
	return cmd
}

// newExportAdminCancelCmd cancels any tenant's export with the admin key.
func newExportAdminCancelCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "admin-cancel TENANT ID",
		Short: "Cancel a tenant's queued or running export (admin key)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withClient(func(c *client.Client) error {
				e, err := c.CancelTenantExport(cmd.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), e)
			})
		},
	}
	f.add(cmd)
	return cmd
}
