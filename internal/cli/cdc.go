package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/cdc/relay"
	"github.com/bulwark-ledger/bulwark/internal/cdc/verify"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

// cdcFlags are the flags shared by the cdc commands.
type cdcFlags struct {
	db          dbFlags
	kafka       string
	slot        string
	publication string
	tables      string
	prefix      string
	ckptTopic   string
	partitions  int32
	logLevel    string
}

func (f *cdcFlags) add(cmd *cobra.Command) {
	f.db.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.kafka, "kafka", os.Getenv(broker.EnvBrokers),
		"Kafka seed brokers host:port,… (env BULWARK_KAFKA_BROKERS); empty = the embedded broker under --data-dir/kafka")
	fl.StringVar(&f.slot, "slot", "bulwark_cdc", "replication slot (also the relay's identity)")
	fl.StringVar(&f.publication, "publication", "bulwark_cdc", "publication to stream")
	fl.StringVar(&f.tables, "tables", "", "tables to publish (schema.table,…) when the publication does not exist")
	fl.StringVar(&f.prefix, "topic-prefix", "bulwark.cdc.", "prefix of the per-table topics")
	fl.StringVar(&f.ckptTopic, "checkpoint-topic", "bulwark.cdc.checkpoints", "compacted topic of relay checkpoints")
	fl.Int32Var(&f.partitions, "partitions", 1, "partitions of the topics the relay creates (existing topics keep theirs)")
	fl.StringVar(&f.logLevel, "log-level", envOr("BULWARK_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
}

func (f *cdcFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), nil
}

// open connects PostgreSQL and Kafka, starting the embedded defaults as
// needed, and returns the relay config and a function releasing both.
func (f *cdcFlags) open(ctx context.Context) (relay.Config, func(), error) {
	log, err := f.logger()
	if err != nil {
		return relay.Config{}, nil, err
	}
	_, pgURL, closeDB, err := f.db.open(ctx)
	if err != nil {
		return relay.Config{}, nil, err
	}
	brokers, closeKafka, err := server.OpenBroker(ctx, broker.Seeds(f.kafka), f.db.dataDir, log)
	if err != nil {
		closeDB()
		return relay.Config{}, nil, err
	}
	cfg := server.RelayConfig(relay.Config{Slot: f.slot, Publication: f.publication,
		PublicationTables: splitList(f.tables), TopicPrefix: f.prefix, CheckpointTopic: f.ckptTopic, TopicPartitions: f.partitions},
		f.db.dataDir, pgURL, brokers, log, nil)
	return cfg, func() { closeKafka(); closeDB() }, nil
}

func newCDCCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cdc",
		Short: "Change stream: exactly-once capture from PostgreSQL's WAL to Kafka",
	}
	cmd.AddCommand(newCDCRunCmd(), newCDCStatusCmd(), newCDCDropCmd(), newCDCResnapshotCmd(), newCDCVerifyCmd(), newCDCChildCmd())
	return cmd
}

func newCDCRunCmd() *cobra.Command {
	var f cdcFlags
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the relay until interrupted (snapshot first, then stream)",
		Long: `Run the relay: on first start it creates the slot, emits every row of the
published tables as "r" events, then streams changes. Each Kafka transaction
holds whole PostgreSQL transactions (or a recorded part of a huge one) and the
checkpoint; the WAL position is confirmed to PostgreSQL only after Kafka commits.
With no --kafka it runs the embedded single-node broker under --data-dir/kafka
(unreplicated: for development and small installations).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, closeAll, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeAll()
			reg := prometheus.NewRegistry()
			cfg.Registerer = reg
			if metricsAddr != "" {
				srv := &http.Server{Addr: metricsAddr, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
					ReadHeaderTimeout: 5 * time.Second}
				go func() { _ = srv.ListenAndServe() }()
				defer srv.Close()
			}
			r, err := relay.New(cfg)
			if err != nil {
				return err
			}
			cfg.Logger.Info("cdc relay running", "slot", cfg.Slot, "brokers", cfg.Brokers)
			return r.Run(cmd.Context())
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics at this address (empty = off)")
	return cmd
}

func newCDCStatusCmd() *cobra.Command {
	var f cdcFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the slot, its lag and the relay's checkpoint (JSON)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, closeAll, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeAll()
			st, err := relay.ReadStatus(cmd.Context(), cfg)
			if errors.Is(err, relay.ErrCheckpointUnreadable) {
				// What PostgreSQL says is still worth showing; the exit
				// status says the checkpoint is unknown.
				if perr := printJSON(cmd.OutOrStdout(), st); perr != nil {
					return perr
				}
				return err
			}
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), st)
		},
	}
	f.add(cmd)
	return cmd
}

func newCDCDropCmd() *cobra.Command {
	var f cdcFlags
	var force bool
	cmd := &cobra.Command{
		Use:   "drop",
		Short: "Remove the replication slot and the checkpoint (stops WAL retention)",
		Long: `Remove the replication slot, releasing the WAL it retains, and tombstone the
relay's checkpoint. A later 'cdc run' starts over with a new snapshot. Refuses
while a relay is connected unless --force (which fences and disconnects it).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, closeAll, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeAll()
			if err := relay.Drop(cmd.Context(), cfg, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "slot %s dropped, checkpoint removed\n", cfg.Slot)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "drop even while a relay is connected")
	return cmd
}

func newCDCResnapshotCmd() *cobra.Command {
	var f cdcFlags
	cmd := &cobra.Command{
		Use:   "resnapshot",
		Short: "Recover from an invalidated or missing slot: new slot, full snapshot, then stream",
		Long: `Fence the running relay, drop the slot and record a reset checkpoint; the relay
(restarting by itself, or the next 'cdc run') creates a new slot and emits a full
snapshot ("r" events) before streaming again. Use it when the relay stops with
"replication slot invalidated" or "replication slot missing": changes between
the last checkpoint and the new snapshot are not in the stream, but the new
snapshot carries the resulting state of every row.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, closeAll, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeAll()
			if err := relay.Resnapshot(cmd.Context(), cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "slot %s reset: the relay will snapshot again on its next start\n", cfg.Slot)
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func newCDCVerifyCmd() *cobra.Command {
	var db dbFlags
	var cfg verify.Config
	var jsonPath string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "End-to-end exactly-once check with SIGKILLs of the relay and broker faults",
		Long: `Write a seeded workload (inserts, updates, deletes, large streamed transactions,
rollbacks, subtransaction aborts) to a fresh database, run the relay as a child
process that is SIGKILLed --kills times at random moments and restarted, inject
broker faults into an embedded broker, then check with a read_committed consumer
that every committed change appears exactly once, in commit order per key, and
nothing of rolled-back work appears. Replay a failure with --seed.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if cfg.Seed == 0 {
				cfg.Seed = uint64(time.Now().UnixNano())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "seed %d\n", cfg.Seed)
			_, pgURL, closeDB, err := db.open(ctx)
			if err != nil {
				return err
			}
			defer closeDB()
			vURL, dropDB, err := scratchDatabase(ctx, pgURL, fmt.Sprintf("bulwark_verify_%d", cfg.Seed%1e9))
			if err != nil {
				return err
			}
			defer dropDB()
			dir, err := os.MkdirTemp("", "bulwark-cdc-verify-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			self, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.PostgresURL, cfg.Dir = vURL, dir
			cfg.Relay = func(env []string) *exec.Cmd { return exec.Command(self, "cdc", "verify-child") }
			rep, err := verify.Run(ctx, cfg)
			if jsonPath != "" {
				if werr := writeJSONFile(jsonPath, rep); werr != nil && err == nil {
					err = werr
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kills %d, faults %q, snapshot resumes %d, txns %d, changes %d, events %d, violations %d, %.1fs\n",
				rep.Kills, rep.Faults, rep.SnapshotResumes, rep.Txns, rep.Changes, rep.Events, len(rep.Violations), rep.DurationSec)
			for i, v := range rep.Violations {
				if i == 20 {
					break
				}
				fmt.Fprintln(cmd.OutOrStdout(), "violation:", v)
			}
			return err
		},
	}
	db.add(cmd)
	f := cmd.Flags()
	f.IntVar(&cfg.Kills, "kills", 5, "SIGKILLs of the relay")
	f.Uint64Var(&cfg.Seed, "seed", 0, "seed of workload, kill times and faults (0 = from the clock)")
	f.IntVar(&cfg.MinTxns, "txns", 300, "least workload transactions")
	f.IntVar(&cfg.InitialRows, "rows", 2000, "rows present before the relay starts (the snapshot)")
	f.StringVar(&jsonPath, "json", "", "write the report as JSON to this file")
	return cmd
}

// newCDCChildCmd is the relay process that verify kills.
func newCDCChildCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "verify-child",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return verify.RunChild(cmd.Context(), os.Stderr)
		},
	}
}

// scratchDatabase creates database name on the server of baseURL and
// returns its URL and a function dropping it.
func scratchDatabase(ctx context.Context, baseURL, name string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", nil, err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	if u.RawQuery == "" {
		u.RawQuery = "sslmode=prefer"
	}
	drop := func() {
		c, err := pgx.Connect(context.Background(), baseURL)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}

func writeJSONFile(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := printJSON(f, v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
