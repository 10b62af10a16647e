package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/cdc/pgoutput"
)

// Status is what `bulwark cdc status` shows.
type Status struct {
	Slot              string      `json:"slot"`
	SlotExists        bool        `json:"slot_exists"`
	SlotActive        bool        `json:"slot_active"`
	WALStatus         string      `json:"wal_status,omitempty"`
	ConfirmedFlushLSN string      `json:"confirmed_flush_lsn,omitempty"`
	RestartLSN        string      `json:"restart_lsn,omitempty"`
	CurrentLSN        string      `json:"current_lsn"`
	WALBytesBehind    int64       `json:"wal_bytes_behind"`
	Checkpoint        *Checkpoint `json:"checkpoint"`
	CheckpointAgeSec  float64     `json:"checkpoint_age_sec,omitempty"`
	// CheckpointError says why the checkpoint could not be read (the
	// rest of the status is still filled in).
	CheckpointError string `json:"checkpoint_error,omitempty"`
	Advice          string `json:"advice,omitempty"`
}

// StatusKafkaTimeout bounds the Kafka part of ReadStatus (metadata, offsets
// and the checkpoint read), so that `bulwark cdc status` answers even when
// the broker does not.
const StatusKafkaTimeout = 45 * time.Second

// statusDialTimeout bounds one connection attempt, and the wait for a
// request's answer beyond its own timeout, of ReadStatus.
const statusDialTimeout = 3 * time.Second

// ReadStatus reports the slot, its lag and the checkpoint. It reads the
// checkpoint with a plain read_committed consumer and fences nothing. When
// the checkpoint cannot be read within StatusKafkaTimeout it returns the
// rest of the status, with CheckpointError set, and an error wrapping
// ErrCheckpointUnreadable.
func ReadStatus(ctx context.Context, cfg Config) (Status, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Status{}, err
	}
	st := Status{Slot: cfg.Slot}
	conn, err := connectSQL(ctx, cfg.PostgresURL)
	if err != nil {
		return st, err
	}
	defer conn.Close(context.Background())
	si, err := querySlot(ctx, conn, cfg.Slot)
	if err != nil {
		return st, err
	}
	var cur string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&cur); err != nil {
		return st, err
	}
	st.CurrentLSN = cur
	if si.exists {
		st.SlotExists, st.SlotActive, st.WALStatus = true, si.active, si.walStatus
		st.ConfirmedFlushLSN, st.RestartLSN = si.confirmedFlush.String(), si.restartLSN.String()
		curLSN, _ := pgoutput.ParseLSN(cur)
		st.WALBytesBehind = int64(curLSN) - int64(si.confirmedFlush)
	}
	// kgo dials, and waits for a request's answer, without regard to ctx
	// (10 s each by default): short bounds keep a silent broker from holding
	// the status past its deadline, and requests retry until then.
	cl, err := kgo.NewClient(append(kafkaBase(&cfg), kgo.DialTimeout(statusDialTimeout), kgo.RequestTimeoutOverhead(statusDialTimeout))...)
	if err != nil {
		st.CheckpointError = err.Error()
		return st, err
	}
	defer cl.Close()
	kctx, cancel := context.WithTimeout(ctx, StatusKafkaTimeout)
	defer cancel()
	ckpt, _, err := readCheckpoint(kctx, cl, cfg.CheckpointTopic, cfg.Slot)
	if err != nil {
		if ctx.Err() == nil && kctx.Err() != nil && !errors.Is(err, ErrCheckpointUnreadable) {
			err = fmt.Errorf("%w: no answer from the brokers %v within %v: %w", ErrCheckpointUnreadable, cfg.Brokers, StatusKafkaTimeout, err)
		}
		st.CheckpointError = err.Error()
		return st, err
	}
	st.Checkpoint = ckpt
	if ckpt != nil {
		st.CheckpointAgeSec = time.Since(ckpt.UpdatedAt).Seconds()
	}
	switch {
	case si.walStatus == "lost":
		st.Advice = ErrSlotInvalidated.Error()
	case ckpt != nil && !ckpt.Reset && !si.exists:
		st.Advice = ErrSlotMissing.Error()
	}
	return st, nil
}

// ErrSlotActive is returned by Drop while a relay is connected to the slot.
var ErrSlotActive = errors.New("relay: the slot is in use by a running relay; stop it first (or pass force)")

// Drop removes the slot and tombstones the checkpoint: a later start
// begins again with a fresh snapshot. It fences any relay of the slot;
// with force, it also terminates the connection of a running one.
func Drop(ctx context.Context, cfg Config, force bool) error {
	return reset(ctx, cfg, force, func(c *Checkpoint) *Checkpoint { return nil })
}

// Resnapshot recovers from an invalidated or missing slot (or restarts
// capture on purpose): it fences the relay, terminates its replication
// connection, drops the slot and records a reset checkpoint, so the next
// start creates a new slot and emits a full snapshot (new "r" events)
// before streaming. Consumers see the snapshot again; the event ids of the
// new snapshot differ from the old one's.
func Resnapshot(ctx context.Context, cfg Config) error {
	return reset(ctx, cfg, true, func(c *Checkpoint) *Checkpoint {
		epoch := 0
		if c != nil {
			epoch = c.Epoch + 1
		}
		return &Checkpoint{Slot: cfg.Slot, Reset: true, Epoch: epoch}
	})
}

func reset(ctx context.Context, cfg Config, force bool, next func(*Checkpoint) *Checkpoint) error {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	conn, err := connectSQL(ctx, cfg.PostgresURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	si, err := querySlot(ctx, conn, cfg.Slot)
	if err != nil {
		return err
	}
	if si.active && !force {
		return ErrSlotActive
	}
	sk, err := newSink(ctx, &cfg) // fences running relays of the slot
	if err != nil {
		return err
	}
	defer sk.close()
	ckpt, _, err := readCheckpoint(ctx, sk.cl, cfg.CheckpointTopic, cfg.Slot)
	if err != nil {
		return err
	}
	if si.exists {
		if err := dropSlot(ctx, conn, cfg.Slot); err != nil {
			return err
		}
	}
	if _, err := sk.ensureTopic(ctx, cfg.CheckpointTopic, true); err != nil {
		return err
	}
	n := next(ckpt)
	if n == nil {
		if err := sk.cl.BeginTransaction(); err != nil {
			return err
		}
		sk.open = true
		if err := sk.add(ctx, &kgo.Record{Topic: cfg.CheckpointTopic, Partition: 0, Key: []byte(cfg.Slot)}); err != nil {
			return err
		}
		if err := sk.cl.Flush(ctx); err != nil {
			return err
		}
		return sk.classify(sk.cl.EndTransaction(ctx, kgo.TryCommit))
	}
	return sk.writeCheckpoint(ctx, n)
}

// dropSlot terminates the slot's walsender, if any, and drops the slot.
func dropSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	for range 50 {
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot); err != nil {
			return fmt.Errorf("terminate slot user: %w", err)
		}
		_, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // the terminated walsender releases the slot
	}
	return fmt.Errorf("drop slot %s: still active", slot)
}
