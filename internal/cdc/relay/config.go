package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulwark-ledger/bulwark/internal/cdc/repl"
)

// Config configures a Relay. Zero values take the documented defaults
// (see EnsureDefaults).
type Config struct {
	// PostgresURL is the database to capture (a normal connection URL; the
	// relay adds replication=database for its replication connection). The
	// role needs REPLICATION and SELECT on the published tables. Required.
	PostgresURL string
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// Slot is the logical replication slot, also the relay's identity: the
	// Kafka transactional id is "bulwark-cdc-" + Slot and its checkpoint
	// record key is Slot. Default "bulwark_cdc".
	Slot string
	// Publication is the publication to stream. Default "bulwark_cdc".
	Publication string
	// PublicationTables, when set, creates Publication FOR these tables
	// (WITH publish_via_partition_root = true) if it does not exist. Empty
	// means the publication must already exist.
	PublicationTables []string
	// TopicPrefix prefixes the per-table topics "<prefix><schema>.<table>".
	// Default "bulwark.cdc.".
	TopicPrefix string
	// CheckpointTopic is the compacted topic of checkpoints. Default
	// "bulwark.cdc.checkpoints".
	CheckpointTopic string
	// TopicPartitions is the partition count of topics the relay creates.
	// Default 1. Existing topics keep theirs.
	TopicPartitions int32
	// MaxTxnBytes bounds the record bytes of one Kafka transaction; a
	// PostgreSQL transaction larger than this spans several, its position
	// recorded in each checkpoint. Default 16 MiB (well under the broker's
	// transaction timeout at any plausible throughput).
	MaxTxnBytes int64
	// FlushInterval bounds how long records wait in an open Kafka
	// transaction while more keep arriving. Default 100 ms.
	FlushInterval time.Duration
	// HeartbeatInterval is the period of pg_logical_emit_message heartbeats
	// that let the slot advance while captured tables are quiet, and of the
	// lag metrics. Default 10 s; negative disables heartbeats.
	HeartbeatInterval time.Duration
	// StatusInterval is the period of standby status updates; it must stay
	// under the server's wal_sender_timeout (60 s by default). Default 10 s.
	StatusInterval time.Duration
	// SnapshotChunkRows is the rows per snapshot chunk (one Kafka
	// transaction each). Default 5,000.
	SnapshotChunkRows int
	// SpillDir holds streamed in-progress transactions until they commit.
	// Default $TMPDIR/bulwark-cdc-<slot>.
	SpillDir string
	// MaxOpenStreams bounds the in-progress streamed transactions held at
	// once (each holds an open file and a 64 KiB write buffer). Default 256;
	// one more is an error that restarts the session.
	MaxOpenStreams int
	// Logger receives the relay's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the relay's metrics. Nil means not registered.
	Registerer prometheus.Registerer
	// TracerProvider traces each Kafka transaction and its stages (see
	// trace.go). Nil means no tracing, and no tracing work.
	TracerProvider trace.TracerProvider
	// KafkaOpts are extra client options (SASL, TLS, …) for every Kafka
	// client the relay creates.
	KafkaOpts []kgo.Opt
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Slot == "" {
		c.Slot = "bulwark_cdc"
	}
	if c.Publication == "" {
		c.Publication = "bulwark_cdc"
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = "bulwark.cdc."
	}
	if c.CheckpointTopic == "" {
		c.CheckpointTopic = "bulwark.cdc.checkpoints"
	}
	if c.TopicPartitions == 0 {
		c.TopicPartitions = 1
	}
	if c.MaxTxnBytes == 0 {
		c.MaxTxnBytes = 16 << 20
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 100 * time.Millisecond
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.SnapshotChunkRows == 0 {
		c.SnapshotChunkRows = 5000
	}
	if c.SpillDir == "" {
		c.SpillDir = filepath.Join(os.TempDir(), "bulwark-cdc-"+c.Slot)
	}
	if c.MaxOpenStreams == 0 {
		c.MaxOpenStreams = 256
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate rejects missing and contradictory settings.
func (c *Config) Validate() error {
	var errs []error
	if c.PostgresURL == "" {
		errs = append(errs, errors.New("PostgresURL is required"))
	}
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers are required (Config.Brokers)"))
	}
	if err := repl.ValidSlotName(c.Slot); err != nil {
		errs = append(errs, err)
	}
	if c.MaxTxnBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("MaxTxnBytes %d below 1 KiB", c.MaxTxnBytes))
	}
	if c.StatusInterval >= 60*time.Second {
		errs = append(errs, fmt.Errorf("StatusInterval %v must stay under wal_sender_timeout (60 s)", c.StatusInterval))
	}
	if c.SnapshotChunkRows < 1 || c.TopicPartitions < 1 || c.MaxOpenStreams < 1 {
		errs = append(errs, errors.New("SnapshotChunkRows, TopicPartitions and MaxOpenStreams must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("relay config: %w", err)
	}
	return nil
}

// TransactionalID is the Kafka transactional id of the relay of slot.
func TransactionalID(slot string) string { return "bulwark-cdc-" + slot }
