package features

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Topics and group of the engine (defaults of Config).
const (
	DefaultEventsTopic = "bulwark.features.events"
	DefaultDetailTopic = "bulwark.features.detail"
	DefaultLedgerTopic = "bulwark.cdc.public.entries"
	DefaultGroup       = "bulwark-features"
)

// TaskPartitions is the number of partitions every backfill, recompute
// and velocity-detail task is split into: tenant events by a hash of their
// id, ledger entries by a hash of their account. It is stored with the
// rows (feature_events.part), so it is a constant, not a setting.
const TaskPartitions = 8

// Config of the engine. Zero values mean the documented defaults.
type Config struct {
	// Brokers are the Kafka seed brokers of the worker and the events API;
	// when empty, BrokersFn is asked on first use (a process opens its
	// embedded broker only when something needs it).
	Brokers   []string
	BrokersFn func(context.Context) ([]string, error)
	// EventsTopic carries tenant events; default DefaultEventsTopic.
	EventsTopic string
	// EventsPartitions is the partition count the events topic is created
	// with when missing; default 8. Raise it online with `bulwark features
	// partitions --add N`.
	EventsPartitions int32
	// LedgerTopic is the relay's entries topic; default DefaultLedgerTopic;
	// "-" disables the ledger source.
	LedgerTopic string
	// DetailTopic receives velocity detail records; default DefaultDetailTopic.
	DetailTopic string
	// Group is the Kafka consumer group of the feature workers; default
	// DefaultGroup. Its positions live in PostgreSQL (feature_offsets).
	Group string
	// SessionTimeout is the consumer group session timeout: how long the
	// partitions of a killed worker wait before the group moves them;
	// default 10 s.
	SessionTimeout time.Duration
	// TileCacheBytes bounds the live path's tile cache (see tileCache):
	// the bundles it wrote last, so that the next batch updates them
	// without reading them first. Zero means 64 MiB (about 20,000
	// entities' current minute, hour and day rows of 20 features; the
	// rows of other entities are read, as without a cache); negative, no
	// cache.
	TileCacheBytes int
	// BatchRecords bounds the records one poll hands to the workers;
	// default 5000 (at ~200 B a record, ~1 MiB in memory).
	BatchRecords int
	// ChunkEvents is the unit of backfill and recompute: one token of the
	// task's rate lets one partition apply up to ChunkEvents events (or
	// ledger entries); default 500.
	ChunkEvents int
	// DetailChunk is the unit of velocity detail: one token produces up to
	// DetailChunk records; default 100.
	DetailChunk int
	// TaskWorkers bounds the task partitions (backfill, recompute,
	// velocity detail) one process works on at once; default 64. Others
	// wait for a process with room (several processes share the work).
	TaskWorkers int
	// TaskLease is how long a process keeps a task partition after its
	// last chunk (renewed by every chunk); a killed process's partitions
	// move after it. Default 10 s.
	TaskLease time.Duration
	// TaskPoll is how often the task runner looks for new work; default 1 s.
	TaskPoll time.Duration
	// LedgerSettle is how long after a ledger feature's version is created
	// its backfill starts, so that every ledger transaction stamped before
	// the cutoff has committed; default 10 s (a commit batch lasts
	// milliseconds).
	LedgerSettle time.Duration
	// EventRetention is how long tenant events are kept for backfill and
	// recompute; default 90 days (the longest window). Events older than
	// it plus the allowed lateness are pruned.
	EventRetention time.Duration
	// Owner names this process in task leases; default host:pid.
	Owner string
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// EnsureDefaults fills the zero fields.
func (c *Config) EnsureDefaults() {
	if c.EventsTopic == "" {
		c.EventsTopic = DefaultEventsTopic
	}
	if c.EventsPartitions == 0 {
		c.EventsPartitions = 8
	}
	if c.LedgerTopic == "" {
		c.LedgerTopic = DefaultLedgerTopic
	}
	if c.DetailTopic == "" {
		c.DetailTopic = DefaultDetailTopic
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.TileCacheBytes == 0 {
		c.TileCacheBytes = 64 << 20
	}
	if c.BatchRecords == 0 {
		c.BatchRecords = 5000
	}
	if c.ChunkEvents == 0 {
		c.ChunkEvents = 500
	}
	if c.DetailChunk == 0 {
		c.DetailChunk = 100
	}
	if c.TaskWorkers == 0 {
		c.TaskWorkers = 64
	}
	if c.TaskLease == 0 {
		c.TaskLease = 10 * time.Second
	}
	if c.TaskPoll == 0 {
		c.TaskPoll = time.Second
	}
	if c.LedgerSettle == 0 {
		c.LedgerSettle = 10 * time.Second
	}
	if c.EventRetention == 0 {
		c.EventRetention = 90 * 24 * time.Hour
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = host + ":" + strconv.Itoa(os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate rejects contradictions.
func (c *Config) Validate() error {
	switch {
	case c.EventsPartitions < 1 || c.EventsPartitions > 10_000:
		return fmt.Errorf("features: events partitions %d outside [1, 10000]", c.EventsPartitions)
	case c.BatchRecords < 1 || c.BatchRecords > 100_000:
		return fmt.Errorf("features: batch records %d outside [1, 100000]", c.BatchRecords)
	case c.ChunkEvents < 1 || c.ChunkEvents > 100_000:
		return fmt.Errorf("features: chunk events %d outside [1, 100000]", c.ChunkEvents)
	case c.TaskWorkers < 1 || c.TaskWorkers > 1024:
		return fmt.Errorf("features: task workers %d outside [1, 1024]", c.TaskWorkers)
	case c.DetailChunk < 1 || c.DetailChunk > 10_000:
		return fmt.Errorf("features: detail chunk %d outside [1, 10000]", c.DetailChunk)
	case c.EventsTopic == c.LedgerTopic || c.EventsTopic == c.DetailTopic:
		return errors.New("features: the events, ledger and detail topics must differ")
	}
	return nil
}

func (c *Config) ledgerEnabled() bool { return c.LedgerTopic != "-" }
