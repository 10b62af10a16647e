package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulwark-ledger/bulwark/internal/cdc/pgoutput"
	"github.com/bulwark-ledger/bulwark/internal/cdc/repl"
)

// Errors that stop Run: retrying cannot help, an operator must act.
var (
	// ErrSlotInvalidated: the server removed WAL the slot still needed
	// (max_slot_wal_keep_size). Changes are lost; recover with
	// `bulwark cdc resnapshot`.
	ErrSlotInvalidated = errors.New("relay: replication slot invalidated (WAL removed, see max_slot_wal_keep_size); changes since the checkpoint are lost: run `bulwark cdc resnapshot`")
	// ErrSlotMissing: a checkpoint exists but the slot does not.
	ErrSlotMissing = errors.New("relay: replication slot missing although a checkpoint exists; changes since the checkpoint may be lost: run `bulwark cdc resnapshot`")
	// ErrPublicationMissing: the publication was dropped while the relay
	// streamed it.
	ErrPublicationMissing = errors.New("relay: the publication does not exist (dropped?); recreate it, then restart the relay")
)

// PostgreSQL error codes (SQLSTATE) the relay acts on. Errors are told
// apart by code and by the catalog, never by their message, which changes
// between versions and with lc_messages.
const (
	sqlstateInsufficientPrivilege        = "42501"
	sqlstateInvalidAuthorization         = "28000"
	sqlstateUndefinedObject              = "42704"
	sqlstateDuplicateObject              = "42710"
	sqlstateObjectNotInPrerequisiteState = "55000"
)

// pgCode returns err's SQLSTATE, or "" when err is not a PostgreSQL error.
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Relay streams one slot's changes into Kafka exactly once.
type Relay struct {
	cfg    Config
	m      *metrics
	tracer trace.Tracer // nil: tracing off
}

// New validates cfg and returns a Relay; nothing is started.
func New(cfg Config) (*Relay, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, m: newMetrics(cfg.Registerer)}
	if cfg.TracerProvider != nil {
		r.tracer = cfg.TracerProvider.Tracer(traceScope)
	}
	return r, nil
}

// Run relays until ctx is done, then commits what it holds, confirms it to
// PostgreSQL and returns nil. Transient failures (lost connections, broker
// errors) restart the session with backoff from the Kafka checkpoint; it
// returns an error only for conditions an operator must resolve:
// ErrFenced, ErrSlotInvalidated, ErrSlotMissing, ErrCheckpointTopicMissing,
// or invalid configuration.
func (r *Relay) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	const maxBackoff = 10 * time.Second
	for {
		started := time.Now()
		err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fatal(err) {
			return err
		}
		r.m.restarts.Inc()
		if time.Since(started) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		r.cfg.Logger.Warn("cdc relay session ended; restarting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func fatal(err error) bool {
	switch pgCode(err) {
	case sqlstateInsufficientPrivilege, sqlstateInvalidAuthorization:
		return true // privileges, authentication
	}
	// An unknown type or an event larger than the broker accepts would fail
	// the same way on every retry: stop with the error instead.
	return errors.Is(err, ErrFenced) || errors.Is(err, ErrSlotInvalidated) || errors.Is(err, ErrSlotMissing) ||
		errors.Is(err, ErrPublicationMissing) || errors.Is(err, ErrCheckpointTopicMissing) || errors.Is(err, errConfig) ||
		errors.Is(err, pgoutput.ErrUnknownType) || errors.Is(err, kerr.MessageTooLarge)
}

// classifyStreamErr turns the errors of START_REPLICATION and of the
// walsender into the typed ones that stop the relay, after asking the
// catalog what the code alone cannot tell: an undefined object is fatal
// when it is the publication, a failed precondition when the slot was
// invalidated. Anything else is returned as is (retried).
func classifyStreamErr(ctx context.Context, conn *pgx.Conn, cfg *Config, err error) error {
	switch pgCode(err) {
	case sqlstateUndefinedObject:
		var exists bool
		qerr := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, cfg.Publication).Scan(&exists)
		if qerr == nil && !exists {
			return fmt.Errorf("%w (%s): %w", ErrPublicationMissing, cfg.Publication, err)
		}
	case sqlstateObjectNotInPrerequisiteState:
		if si, qerr := querySlot(ctx, conn, cfg.Slot); qerr == nil && si.walStatus == "lost" {
			return fmt.Errorf("%w: %w", ErrSlotInvalidated, err)
		}
	}
	return err
}

var errConfig = errors.New("relay: configuration")

// slotInfo is a row of pg_replication_slots.
type slotInfo struct {
	exists         bool
	active         bool
	walStatus      string
	confirmedFlush pgoutput.LSN
	restartLSN     pgoutput.LSN
}

func querySlot(ctx context.Context, conn *pgx.Conn, slot string) (slotInfo, error) {
	var s slotInfo
	var confirmed, restart, status *string
	err := conn.QueryRow(ctx, `SELECT active, wal_status, confirmed_flush_lsn::text, restart_lsn::text
		FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&s.active, &status, &confirmed, &restart)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("query slot: %w", err)
	}
	s.exists = true
	if status != nil {
		s.walStatus = *status
	}
	if confirmed != nil {
		s.confirmedFlush, _ = pgoutput.ParseLSN(*confirmed)
	}
	if restart != nil {
		s.restartLSN, _ = pgoutput.ParseLSN(*restart)
	}
	return s, nil
}

// connectSQL opens a normal connection with the text formats the decoder
// expects, so snapshot rows decode exactly like streamed ones.
func connectSQL(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres url: %w", errConfig, err)
	}
	cfg.RuntimeParams["bytea_output"] = "hex"
	cfg.RuntimeParams["DateStyle"] = "ISO"
	cfg.RuntimeParams["IntervalStyle"] = "postgres"
	cfg.RuntimeParams["application_name"] = "bulwark-cdc"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect postgres: %w", err)
	}
	return conn, nil
}

// ensurePublication creates the publication for cfg.PublicationTables when
// it does not exist.
func ensurePublication(ctx context.Context, conn *pgx.Conn, cfg *Config) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, cfg.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("check publication: %w", err)
	}
	if exists {
		return nil
	}
	if len(cfg.PublicationTables) == 0 {
		return fmt.Errorf("%w: publication %q does not exist (create it, or pass the tables to publish)", errConfig, cfg.Publication)
	}
	tables := make([]string, len(cfg.PublicationTables))
	for i, t := range cfg.PublicationTables {
		parts := strings.SplitN(t, ".", 2)
		for j := range parts {
			parts[j] = pgx.Identifier{parts[j]}.Sanitize()
		}
		tables[i] = strings.Join(parts, ".")
	}
	sql := fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true)",
		pgx.Identifier{cfg.Publication}.Sanitize(), strings.Join(tables, ", "))
	if _, err := conn.Exec(ctx, sql); err != nil {
		if pgCode(err) == sqlstateDuplicateObject {
			return nil // created concurrently
		}
		return fmt.Errorf("create publication: %w", err)
	}
	return nil
}

// session is one connected run: fence, read the checkpoint, snapshot if
// needed, then stream until an error or ctx is done.
func (r *Relay) session(ctx context.Context) error {
	cfg := &r.cfg
	sk, err := newSink(ctx, cfg)
	if err != nil {
		return err
	}
	defer sk.close()
	ckpt, topicExisted, err := readCheckpoint(ctx, sk.cl, cfg.CheckpointTopic, cfg.Slot)
	if err != nil {
		return err
	}
	// The topic exists before any slot does, so a slot without a topic
	// means the topic was deleted.
	if _, err := sk.ensureTopic(ctx, cfg.CheckpointTopic, true); err != nil {
		return err
	}
	conn, err := connectSQL(ctx, cfg.PostgresURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := ensurePublication(ctx, conn, cfg); err != nil {
		return err
	}
	rc, err := repl.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		return err
	}
	defer rc.Close(context.Background())
	sys, err := rc.IdentifySystem(ctx)
	if err != nil {
		return err
	}
	slot, err := querySlot(ctx, conn, cfg.Slot)
	if err != nil {
		return err
	}
	s := &session{r: r, cfg: cfg, sink: sk, conn: conn, dbName: sys.DBName}
	switch {
	case ckpt == nil || ckpt.Reset:
		epoch := 0
		if ckpt != nil {
			epoch = ckpt.Epoch
		}
		if slot.exists && !topicExisted {
			return ErrCheckpointTopicMissing
		}
		if slot.exists {
			// No checkpoint yet (a crash right after creating the slot) or a
			// requested reset: nothing of this slot is in Kafka, start over.
			if err := rc.DropSlot(ctx, cfg.Slot, true); err != nil {
				return err
			}
		}
		if err := s.initialSnapshot(ctx, rc, epoch); err != nil {
			return err
		}
	case !slot.exists:
		return ErrSlotMissing
	case slot.walStatus == "lost":
		return ErrSlotInvalidated
	default:
		s.ckpt = *ckpt
		if ckpt.Snapshot != nil && !ckpt.Snapshot.Done {
			if err := s.resumeSnapshot(ctx); err != nil {
				return err
			}
		}
	}
	return s.stream(ctx, rc)
}

// kafkaBase are the options of the relay's non-transactional clients.
func kafkaBase(cfg *Config) []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.KafkaOpts...)
}
