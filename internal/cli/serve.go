package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/server"
	"github.com/bulwark-ledger/bulwark/internal/tracing"
)

func newServeCmd() *cobra.Command {
	var cfg server.Config
	var roles, logLevel, kafka string
	var tileCacheMB int
	var tcfg tracing.Config
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run Bulwark (every role in one process by default)",
		Long: `Run Bulwark. With no --postgres it initialises and starts a private PostgreSQL
cluster under --data-dir (wal_level=logical) as its child process and stops it on
shutdown; if serve is killed, the server shuts itself down. It refuses a data
directory whose server another live bulwark process runs.
The admin key is read from --admin-key, BULWARK_ADMIN_KEY, or <data-dir>/admin.key
(generated on first start).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if roles != "" {
				cfg.Roles = strings.Split(roles, ",")
			}
			cfg.KafkaBrokers = broker.Seeds(kafka)
			switch {
			case tileCacheMB > 1<<20:
				return fmt.Errorf("--features-tile-cache-mb %d: at most %d", tileCacheMB, 1<<20)
			case tileCacheMB > 0:
				cfg.Features.TileCacheBytes = tileCacheMB << 20
			case tileCacheMB < 0:
				cfg.Features.TileCacheBytes = -1
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return err
			}
			cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			tuneGC()
			tcfg.Roles = cfg.Roles
			tp, err := tracing.New(cmd.Context(), tcfg)
			if err != nil {
				return err
			}
			if tp == nil {
				return server.Run(cmd.Context(), cfg)
			}
			cfg.TracerProvider = tp
			cfg.Logger.Info("tracing on: spans exported over OTLP/HTTP", "sample_ratio", tcfg.SampleRatio)
			runErr := server.Run(cmd.Context(), cfg)
			// Flush what is queued after every traced component stopped,
			// bounded so that a gone collector cannot hold up the exit.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(sctx); err != nil {
				cfg.Logger.Warn("tracing: flush on shutdown", "err", err)
			}
			return runErr
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", envOr("BULWARK_ADDR", "127.0.0.1:8080"), "HTTP listen address (env BULWARK_ADDR)")
	f.StringVar(&cfg.DataDir, "data-dir", envOr("BULWARK_DATA_DIR", ".bulwark"), "data directory of the embedded defaults (env BULWARK_DATA_DIR)")
	f.StringVar(&cfg.DebugAddr, "debug-addr", os.Getenv("BULWARK_DEBUG_ADDR"), "serve Go profiles (/debug/pprof/) on this address, unauthenticated: loopback or a private network only (env BULWARK_DEBUG_ADDR); empty = off")
	f.StringVar(&cfg.PostgresURL, "postgres", os.Getenv("BULWARK_POSTGRES_URL"), "external PostgreSQL URL (env BULWARK_POSTGRES_URL); empty = embedded")
	f.StringVar(&cfg.AdminKey, "admin-key", os.Getenv("BULWARK_ADMIN_KEY"), "admin API key (env BULWARK_ADMIN_KEY); empty = <data-dir>/admin.key")
	f.StringVar(&roles, "roles", os.Getenv("BULWARK_ROLES"), "comma-separated roles: api,workers,cdc,features,exports (env BULWARK_ROLES); empty = all")
	f.StringVar(&kafka, "kafka", os.Getenv("BULWARK_KAFKA_BROKERS"), "Kafka seed brokers host:port,… (env BULWARK_KAFKA_BROKERS); empty = embedded broker under --data-dir/kafka")
	f.StringVar(&cfg.CDC.Slot, "cdc-slot", "", "replication slot of the change stream (default bulwark_cdc)")
	f.StringVar(&cfg.CDC.TopicPrefix, "cdc-topic-prefix", "", "topic prefix of the change stream (default bulwark.cdc.)")
	f.StringVar(&tcfg.Endpoint, "otlp-endpoint", "", "OpenTelemetry collector for traces, OTLP/HTTP URL (http://host:4318) or host:port (HTTPS); empty = env "+
		tracing.EndpointEnv+", else tracing off")
	f.Float64Var(&tcfg.SampleRatio, "trace-sample-ratio", 0, "share of traces kept, in (0, 1] (0 = 1: all)")
	f.StringVar(&logLevel, "log-level", envOr("BULWARK_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	f.Int32Var(&cfg.MaxConns, "max-conns", 32, "PostgreSQL pool size")
	f.IntVar(&cfg.Pipeline.MaxBatchTransactions, "batch-max", 0, "max transactions per commit batch (0 = 8190)")
	f.DurationVar(&cfg.Pipeline.BatchWindow, "batch-window", 0, "how long a batch waits to fill (0 = 500µs, negative = no wait)")
	f.IntVar(&cfg.Pipeline.Committers, "committers", 0, "batches in flight at once (0 = 2)")
	f.BoolVar(&cfg.Pipeline.Naive, "naive", false, "benchmark baseline: one database transaction per request, no batching")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", 20*time.Second, "graceful shutdown bound for in-flight HTTP requests")
	f.StringVar(&cfg.Exports.Dir, "export-dir", os.Getenv("BULWARK_EXPORT_DIR"), "directory of export files, shared by the api and exports roles (env BULWARK_EXPORT_DIR); empty = <data-dir>/exports")
	f.IntVar(&cfg.Exports.NormalWorkers, "export-workers", 0, "workers of the normal export queue (0 = 2)")
	f.IntVar(&cfg.Exports.HugeWorkers, "export-huge-workers", 0, "workers of the huge export queue (0 = 2)")
	f.IntVar(&tileCacheMB, "features-tile-cache-mb", envInt("BULWARK_FEATURES_TILE_CACHE_MB"), "MiB of the features live path's tile cache (env BULWARK_FEATURES_TILE_CACHE_MB; 0 = 64, negative = none)")
	return cmd
}

// tuneGC sets the collector's target to 400% unless GOGC says otherwise:
// the commit pipeline allocates per batch while it holds row locks, and
// fewer collections shorten that critical section (measured: about +15%
// hot-account throughput with batch requests). Used by serve and by the
// benchmarks that run a server in-process.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}
