package ledgerbench

import (
	"github.com/bulwark-ledger/bulwark/internal/ledger"

	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"
)

// Workloads.
const (
	// WorkloadHot sends every transfer to or from one account, the worst
	// case for row locks: every naive transaction queues on the same row.
	WorkloadHot = "hot"
	// WorkloadUniform spreads transfers over uniformAccounts accounts.
	WorkloadUniform = "uniform"
)

// Modes of the server.
const (
	ModePipeline = "pipeline"
	ModeNaive    = "naive"
	// ModeClient runs the pipeline server and sends one transfer per call
	// through the public Go client (package client), whose automatic
	// batching coalesces the concurrent calls into batch requests. It
	// measures request type single only.
	ModeClient = "client"
	// ModeFloor runs no server: the cheapest commits PostgreSQL allows
	// for the same in-flight transfers (see floor.go), the bound of what
	// any server or client could reach on this machine.
	ModeFloor = "floor"
)

// Request types.
const (
	// RequestSingle posts one transfer per POST /v1/transactions.
	RequestSingle = "single"
	// RequestBatch100 posts batchSize transfers per POST /v1/transactions/batch.
	RequestBatch100 = "batch100"
)

// Limits.
const (
	// MaxClients bounds the concurrent clients: each holds one TCP
	// connection and a ~11 KiB histogram, so 1,024 clients cost ~11 MiB
	// and stay far below the server's file descriptor limit.
	MaxClients = 1024
	// MaxDuration bounds the measured window of one run.
	MaxDuration = time.Hour
	// batchSize is the transfers of one batch100 request.
	batchSize = 100
	// requestTimeout bounds one HTTP request; past it the request counts as
	// failed (it may still commit: the stored-count check allows that).
	requestTimeout = 30 * time.Second
)

// Config of a benchmark.
type Config struct {
	// Pipeline tunes the servers' commit pipeline (Naive is set per mode).
	Pipeline ledger.PipelineConfig
	// Workload is WorkloadHot or WorkloadUniform. Empty means hot.
	Workload string
	// Clients is the number of concurrent closed-loop clients (one request
	// in flight each). Zero means 32; at most MaxClients.
	Clients int
	// Duration is the measured window of each run. Zero means 10 s; at
	// most MaxDuration.
	Duration time.Duration
	// Warmup runs the load before the measured window (connections, caches,
	// the pipeline's steady state). Zero means 1 s; negative means none.
	Warmup time.Duration
	// PostgresURL is a superuser URL of an existing server; each run creates
	// its own database there and drops it afterwards. Empty means start a
	// private cluster (durable settings: fsync on) in a temporary directory
	// and remove it afterwards.
	PostgresURL string
	// Requests are the request types to measure, in order. Empty means
	// single and batch100.
	Requests []string
	// Modes are the server modes to measure, in order. Empty means
	// pipeline, naive, client and floor (client needs request type single
	// and skips the others).
	Modes []string
	// Seed of the transfer generator; a run replays from it. Zero means 1.
	Seed uint64
	// Logger receives the servers' logs. Nil means warnings and errors as
	// text to stderr.
	Logger *slog.Logger
}

func (c *Config) ensureDefaults() {
	if c.Workload == "" {
		c.Workload = WorkloadHot
	}
	if c.Clients == 0 {
		c.Clients = 32
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = time.Second
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if len(c.Requests) == 0 {
		c.Requests = []string{RequestSingle, RequestBatch100}
	}
	if len(c.Modes) == 0 {
		c.Modes = []string{ModePipeline, ModeNaive, ModeClient, ModeFloor}
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
}

// Validate rejects a configuration that cannot run. Call it after defaults
// are applied (Run does both).
func (c *Config) Validate() error {
	var errs []error
	if c.Workload != WorkloadHot && c.Workload != WorkloadUniform {
		errs = append(errs, fmt.Errorf("workload %q: want %s or %s", c.Workload, WorkloadHot, WorkloadUniform))
	}
	if c.Clients < 1 || c.Clients > MaxClients {
		errs = append(errs, fmt.Errorf("clients %d: want 1 to %d", c.Clients, MaxClients))
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("duration %s: want more than 0 and at most %s", c.Duration, MaxDuration))
	}
	errs = append(errs, checkList("request", c.Requests, RequestSingle, RequestBatch100))
	errs = append(errs, checkList("mode", c.Modes, ModePipeline, ModeNaive, ModeClient, ModeFloor))
	if slices.Contains(c.Modes, ModeClient) && !slices.Contains(c.Requests, RequestSingle) {
		errs = append(errs, fmt.Errorf("mode %s measures request type %s only: add it to the request types", ModeClient, RequestSingle))
	}
	return errors.Join(errs...)
}

func checkList(what string, got []string, valid ...string) error {
	for i, s := range got {
		if !slices.Contains(valid, s) {
			return fmt.Errorf("%s %q: want one of %v", what, s, valid)
		}
		if slices.Contains(got[:i], s) {
			return fmt.Errorf("%s %q given twice", what, s)
		}
	}
	return nil
}
