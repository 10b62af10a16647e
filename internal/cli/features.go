package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/client"
	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

func newFeaturesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "features", Short: "Velocity features: definitions, events, tasks, verification (docs/features.md)"}
	cmd.AddCommand(newFeaturesDefineCmd(), newFeaturesListCmd(), newFeaturesShowCmd(), newFeaturesDeleteCmd(),
		newFeaturesEventsCmd(), newFeaturesTasksCmd(), newFeaturesVerifyCmd(), newFeaturesPartitionsCmd())
	return cmd
}

// jsonArg reads a JSON body from --file (or "-" for stdin).
func jsonArg(file string) (json.RawMessage, error) {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%s: not JSON", file)
	}
	return b, nil
}

func newFeaturesDefineCmd() *cobra.Command {
	var api apiFlags
	var file string
	cmd := &cobra.Command{
		Use:   "define --file DEF.json --key TENANT_KEY",
		Short: "Define a feature, or change one (a new version, recomputed, then switched to atomically)",
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := jsonArg(file)
			if err != nil {
				return err
			}
			var out any
			if err := api.call(cmd.Context(), "POST", "/v1/features/definitions", body, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	api.add(cmd)
	cmd.Flags().StringVar(&file, "file", "-", "definition JSON file (- = stdin)")
	return cmd
}

func newFeaturesListCmd() *cobra.Command {
	var api apiFlags
	cmd := &cobra.Command{
		Use:   "list --key TENANT_KEY",
		Short: "List the tenant's live features",
		RunE: func(cmd *cobra.Command, args []string) error {
			return api.withClient(func(c *client.Client) error {
				defs, err := c.FeatureDefinitions(cmd.Context())
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), map[string]any{"definitions": defs})
			})
		},
	}
	api.add(cmd)
	return cmd
}

func newFeaturesShowCmd() *cobra.Command {
	var api apiFlags
	cmd := &cobra.Command{
		Use:   "show NAME --key TENANT_KEY",
		Short: "Show every version of a feature with its task progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return api.withClient(func(c *client.Client) error {
				vs, err := c.FeatureVersions(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), map[string]any{"name": args[0], "versions": vs})
			})
		},
	}
	api.add(cmd)
	return cmd
}

func newFeaturesDeleteCmd() *cobra.Command {
	var api apiFlags
	cmd := &cobra.Command{
		Use:   "delete NAME --key TENANT_KEY",
		Short: "Retire every version of a feature",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return api.withClient(func(c *client.Client) error { return c.DeleteFeature(cmd.Context(), args[0]) })
		},
	}
	api.add(cmd)
	return cmd
}

func newFeaturesEventsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Tenant events"}
	var api apiFlags
	var file string
	send := &cobra.Command{
		Use:   "send --file EVENTS.json --key TENANT_KEY",
		Short: `Send one event or {"events":[…]} (up to 1,000) to POST /v1/events`,
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := jsonArg(file)
			if err != nil {
				return err
			}
			var out any
			if err := api.call(cmd.Context(), "POST", "/v1/events", body, &out); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
	api.add(send)
	send.Flags().StringVar(&file, "file", "-", "events JSON file (- = stdin)")
	cmd.AddCommand(send)
	return cmd
}

func newFeaturesTasksCmd() *cobra.Command {
	var db dbFlags
	var asJSON bool
	var chunk, detail int
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "Every unfinished task partition: tenant × task × partition, rate, paused, done/total, lag, ETA",
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, _, closeFn, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			w := control.NewWatcher(pool, control.NewRegistry(), nil, nil)
			if err := w.Sync(cmd.Context()); err != nil {
				return err
			}
			rows, err := features.Tasks(cmd.Context(), pool, features.ControlRates(w.Current()), chunk, detail, time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"tasks": rows})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TENANT\tTASK\tFEATURE\tPART\tRATE/S\tPAUSED\tDONE/TOTAL\tLAG EVENTS\tLAG S\tETA S\tOWNER")
			for _, r := range rows {
				feat := "-"
				if r.Feature != "" {
					feat = fmt.Sprintf("%s v%d", r.Feature, r.Version)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%g\t%v\t%d/%d\t%d\t%.0f\t%.0f\t%s\n", r.Tenant, r.Task, feat, r.Partition,
					r.Rate, r.Paused, r.Done, r.Total, r.LagEvents, r.LagSecs, r.ETA, r.Owner)
			}
			if len(rows) == 0 {
				fmt.Fprintln(tw, "no unfinished task")
			}
			return tw.Flush()
		},
	}
	db.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&chunk, "chunk-events", 500, "the backfill/recompute unit of the workers (for the ETA)")
	cmd.Flags().IntVar(&detail, "detail-chunk", 100, "the velocity detail unit of the workers (for the ETA)")
	return cmd
}

func newFeaturesVerifyCmd() *cobra.Command {
	var db dbFlags
	var asJSON bool
	var at string
	cmd := &cobra.Command{
		Use:   "verify [--at RFC3339]",
		Short: "Recompute every active feature by brute force from the event log and the entries table and compare; non-zero exit on a mismatch",
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			if at != "" {
				t, err := time.Parse(time.RFC3339Nano, at)
				if err != nil {
					return fmt.Errorf("--at: %w", err)
				}
				now = t
			}
			pool, _, closeFn, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			w := control.NewWatcher(pool, control.NewRegistry(), nil, nil)
			if err := w.Sync(cmd.Context()); err != nil {
				return err
			}
			e, err := features.New(pool, w, nil, features.Config{})
			if err != nil {
				return err
			}
			rep, err := e.Verify(cmd.Context(), now)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "at %s: %d features (%d still building, skipped), %d entities, %d values, %d events: %d mismatches\n",
					rep.At.Format(time.RFC3339), rep.Features, rep.Skipped, rep.Entities, rep.Values, rep.Events, len(rep.Mismatches))
				for _, m := range rep.Mismatches {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s/%s v%d %s %s: engine %s, brute force %s\n", m.Tenant, m.Feature, m.Version, m.Entity, m.Window, m.Engine, m.Expected)
				}
			}
			if len(rep.Mismatches) > 0 {
				return fmt.Errorf("%d mismatches", len(rep.Mismatches))
			}
			return nil
		},
	}
	db.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().StringVar(&at, "at", "", "the fixed time to compare at (default now)")
	return cmd
}

func newFeaturesPartitionsCmd() *cobra.Command {
	var kafka, dataDir, topic string
	var add int
	cmd := &cobra.Command{
		Use:   "partitions --add N",
		Short: "Add N partitions to the events topic, online (the workers rebalance onto them)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if add < 1 {
				return fmt.Errorf("--add must be at least 1")
			}
			brokers, closeFn, err := server.OpenBroker(cmd.Context(), broker.Seeds(kafka), dataDir, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
			if err != nil {
				return err
			}
			defer closeFn()
			if err := features.AddPartitions(cmd.Context(), brokers, topic, add); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %d partitions to %s\n", add, topic)
			return nil
		},
	}
	cmd.Flags().StringVar(&kafka, "kafka", os.Getenv("BULWARK_KAFKA_BROKERS"), "Kafka seed brokers (env BULWARK_KAFKA_BROKERS); empty = the embedded broker under --data-dir")
	cmd.Flags().StringVar(&dataDir, "data-dir", envOr("BULWARK_DATA_DIR", ".bulwark"), "data directory of the embedded broker")
	cmd.Flags().StringVar(&topic, "topic", features.DefaultEventsTopic, "topic")
	cmd.Flags().IntVar(&add, "add", 0, "partitions to add (required)")
	return cmd
}
