// Package server assembles a Bulwark process from its role table
// (process.go): storage (embedded or external), migrations, the control
// plane, then the components of each role it runs, and HTTP with /metrics,
// /healthz and /readyz in every process. It owns every goroutine it starts
// and shuts them down in reverse order of start: stop accepting HTTP and
// drain in-flight requests, stop the relay then its broker, the workers,
// drain the commit pipeline, stop the control plane, close the pool, stop
// the embedded PostgreSQL.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulwark-ledger/bulwark/internal/admission"
	"github.com/bulwark-ledger/bulwark/internal/cdc/relay"
	"github.com/bulwark-ledger/bulwark/internal/export"
	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/pgserver"
	"github.com/bulwark-ledger/bulwark/internal/schema"
)

// Config of one process.
type Config struct {
	// Addr is the HTTP listen address. Empty means 127.0.0.1:8080; port 0
	// picks a free port (see Ready).
	Addr string
	// DebugAddr, when set, serves Go's profiles (net/http/pprof under
	// /debug/pprof/) on a listener of their own, unauthenticated: bind it
	// to loopback or a private network. Empty (the default): no listener.
	DebugAddr string
	// DataDir holds the embedded PostgreSQL cluster, the embedded broker and
	// admin.key. Empty means ".bulwark".
	DataDir string
	// PostgresURL selects an external PostgreSQL; empty means embedded.
	PostgresURL string
	// ExistingOnly makes OpenStorage fail with ErrNoDatabase rather than
	// initialise the embedded cluster, create the database, or install the
	// schema into an empty database: maintenance commands (ledger verify,
	// ledger archive, cdc …) must never conjure up an empty ledger and then
	// report on it. A schema that exists is still migrated forward.
	ExistingOnly bool
	// AdminKey authorises the admin API. Empty means read DataDir/admin.key,
	// generating it on first start (mode 0600).
	AdminKey string
	// Roles to run: "api" (HTTP edge and ledger writes), "workers"
	// (journal applier, pending expiry, partition maintenance), "cdc"
	// (the change stream relay to Kafka), "features" (feature workers
	// and their background tasks) and "exports" (export workers). Empty
	// means all of them.
	Roles []string
	// KafkaBrokers are the seed brokers of the change stream; empty means
	// the embedded single-node broker under DataDir/kafka.
	KafkaBrokers []string
	// CDC tunes the relay; PostgresURL, Brokers, Logger and Registerer are
	// filled in by Run.
	CDC relay.Config
	// Features tunes the features engine (zero = defaults); Logger,
	// Registerer and the brokers are filled in by Run.
	Features features.Config
	// Exports tunes the export workers; Exports.Dir empty means
	// DataDir/exports (the api role serves downloads from the same
	// directory, so separate processes must share it).
	Exports export.Config
	// ExportStatementTimeout bounds every statement of the export pools
	// (one chunk read). Zero means 30 s.
	ExportStatementTimeout time.Duration
	// Admission tunes overload control at the HTTP edge (zero = defaults).
	Admission admission.Config
	// Pipeline tunes the ledger commit pipeline.
	Pipeline ledger.PipelineConfig
	// MaxConns bounds the PostgreSQL pool. Zero means 32.
	MaxConns int32
	// DrainTimeout bounds the graceful shutdown of HTTP. Zero means 20 s.
	DrainTimeout time.Duration
	// Logger; nil means JSON to stderr.
	Logger *slog.Logger
	// Ready, when set, receives the bound HTTP address once serving.
	Ready func(addr string)
	// TracerProvider traces requests, admission, ledger batches and the
	// change stream (see internal/tracing). Nil means no tracing. The
	// caller owns it: shut it down after Run returns.
	TracerProvider trace.TracerProvider
}

func (c *Config) ensureDefaults() error {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = ".bulwark"
	}
	if c.MaxConns == 0 {
		c.MaxConns = 32
	}
	if c.Exports.Dir == "" {
		c.Exports.Dir = filepath.Join(c.DataDir, "exports")
	}
	if c.ExportStatementTimeout == 0 {
		c.ExportStatementTimeout = 30 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 20 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if len(c.Roles) == 0 {
		for _, r := range roles {
			c.Roles = append(c.Roles, r.name)
		}
	}
	for _, r := range c.Roles {
		if !slices.ContainsFunc(roles, func(x role) bool { return x.name == r }) {
			return fmt.Errorf("unknown role %q (%s)", r, strings.Join(roleNames(), ", "))
		}
	}
	return nil
}

func (c *Config) has(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// ErrNoDatabase is returned with Config.ExistingOnly when there is no
// initialised Bulwark database to open.
var ErrNoDatabase = errors.New("no initialised Bulwark database")

// OpenStorage connects to cfg.PostgresURL, or starts the embedded cluster
// under cfg.DataDir, and migrates: what Run does first, for commands that
// work on the database directly. stop closes the pool and stops a cluster
// this call started.
func OpenStorage(ctx context.Context, cfg Config) (pool *pgxpool.Pool, url string, stop func(), err error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, "", nil, err
	}
	pool, url, stopPG, err := openStorage(ctx, &cfg)
	if err != nil {
		return nil, "", nil, err
	}
	return pool, url, func() { pool.Close(); stopPG() }, nil
}

// openStorage connects to the external PostgreSQL or starts the embedded
// cluster, then migrates.
func openStorage(ctx context.Context, cfg *Config) (*pgxpool.Pool, string, func(), error) {
	url, stop := cfg.PostgresURL, func() {}
	if url == "" {
		var err error
		if url, stop, err = startEmbedded(ctx, cfg); err != nil {
			return nil, "", nil, err
		}
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		stop()
		return nil, "", nil, fmt.Errorf("postgres url: %w", err)
	}
	pcfg.MaxConns = cfg.MaxConns
	// Custom plans for every execution: a prepared statement first planned on
	// a fresh, empty table would otherwise keep a generic sequential-scan plan
	// (seen: the idempotency lookup scanning all transactions per batch).
	// Planning costs tens of µs per statement, a few per batch.
	pcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		stop()
		return nil, "", nil, fmt.Errorf("connect postgres: %w", err)
	}
	if cfg.ExistingOnly {
		if err := requireSchema(ctx, pool, pcfg.ConnConfig.Database); err != nil {
			pool.Close()
			stop()
			return nil, "", nil, err
		}
	}
	if err := schema.Migrate(ctx, pool); err != nil {
		pool.Close()
		stop()
		return nil, "", nil, err
	}
	// Partitions exist before the first write, so entries normally never
	// land in the default partition. A failure (say the default partition
	// already holds rows of a month, after months without a workers role)
	// does not stop the process: writes still go to the default partition.
	if err := ledger.EnsurePartitions(ctx, pool, time.Now()); err != nil {
		cfg.Logger.Warn("ensure entry partitions; entries go to the default partition until fixed", "err", err)
	}
	return pool, url, stop, nil
}

// startEmbedded starts (or adopts) the embedded cluster under DataDir and
// returns the URL of its bulwark database and how to stop it. With
// ExistingOnly it neither initialises the cluster nor creates the database.
func startEmbedded(ctx context.Context, cfg *Config) (string, func(), error) {
	dir := filepath.Join(cfg.DataDir, "postgres")
	c, err := pgserver.Start(ctx, pgserver.Config{Dir: dir, NoInit: cfg.ExistingOnly})
	if errors.Is(err, pgserver.ErrNotInitialised) {
		return "", nil, fmt.Errorf("%w: no embedded PostgreSQL cluster under %s (run this in the directory holding .bulwark, "+
			"pass --data-dir, or --postgres URL; `bulwark serve` creates it)", ErrNoDatabase, dir)
	}
	if err != nil {
		return "", nil, err
	}
	if !cfg.ExistingOnly && !c.Owned() {
		// serve ties the server's life to its own (it stops it on
		// shutdown, and the kernel stops it if serve is killed); one run
		// by another live process would vanish with that process.
		return "", nil, fmt.Errorf("embedded PostgreSQL under %s is run by another live bulwark process "+
			"(a maintenance command, or a second serve); stop it first", dir)
	}
	stop := func() {
		if err := c.Stop(); err != nil {
			cfg.Logger.Error("stop embedded postgres", "err", err)
		}
	}
	if cfg.ExistingOnly {
		err = requireDatabase(ctx, c.URL("postgres"), "bulwark")
	} else {
		err = EnsureDatabase(ctx, c.URL("postgres"), "bulwark")
	}
	if err != nil {
		stop()
		return "", nil, err
	}
	url := c.URL("bulwark")
	cfg.Logger.Info("embedded postgres", "dir", c.Dir(), "url", url)
	return url, stop, nil
}

// requireDatabase fails with ErrNoDatabase unless database name exists.
func requireDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("check database %s: %w", name, err)
	}
	if !exists {
		return fmt.Errorf("%w: the embedded cluster has no database %q (`bulwark serve` creates it)", ErrNoDatabase, name)
	}
	return nil
}

// invalidCatalogName is SQLSTATE 3D000: the database does not exist.
const invalidCatalogName = "3D000"

// requireSchema fails with ErrNoDatabase when the database does not exist
// or holds no Bulwark schema.
func requireSchema(ctx context.Context, pool *pgxpool.Pool, name string) error {
	ok, err := schema.Installed(ctx, pool)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == invalidCatalogName {
		return fmt.Errorf("%w: database %q does not exist", ErrNoDatabase, name)
	}
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: database %q holds no Bulwark schema (`bulwark serve` installs it)", ErrNoDatabase, name)
	}
	return nil
}

// EnsureDatabase creates database name if it does not exist.
func EnsureDatabase(ctx context.Context, adminURL, name string) error {
	pool, err := pgxpool.New(ctx, adminURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("check database: %w", err)
	}
	if !exists {
		if _, err := pool.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	}
	return nil
}

func loadAdminKey(dir string) (string, error) {
	path := filepath.Join(dir, "admin.key")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	key := "bwa_" + hex.EncodeToString(raw[:])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin key: %w", err)
	}
	return key, nil
}
