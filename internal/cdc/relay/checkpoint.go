package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/cdc/pgoutput"
)

// Checkpoint is the relay's position, written to the checkpoint topic in
// the same Kafka transaction as the records it accounts for. It therefore
// describes exactly what a read_committed consumer can see.
type Checkpoint struct {
	Slot string `json:"slot"`
	// LSN is the commit LSN of the last transaction with records in Kafka,
	// Pos how many of its changes are there, and Complete whether that is
	// all of them.
	LSN      pgoutput.LSN `json:"lsn"`
	Pos      int64        `json:"pos"`
	Complete bool         `json:"complete"`
	// EndLSN is the end of the commit record of the last complete
	// transaction: what may be confirmed to PostgreSQL.
	EndLSN pgoutput.LSN `json:"end_lsn"`
	// Snapshot is the initial snapshot's progress; nil before the slot
	// exists.
	Snapshot *SnapshotState `json:"snapshot,omitempty"`
	// Reset asks the next start to drop the slot and snapshot again
	// (written by Resnapshot).
	Reset     bool      `json:"reset,omitempty"`
	Epoch     int       `json:"epoch"`
	UpdatedAt time.Time `json:"updated_at"`
}

// covers reports whether the change at pos of the transaction committed
// at commitLSN is already in Kafka.
func (c *Checkpoint) covers(commitLSN pgoutput.LSN, pos int64) bool {
	if commitLSN != c.LSN {
		return commitLSN < c.LSN
	}
	return c.Complete || pos < c.Pos
}

// SnapshotState tracks the initial snapshot, table by table.
type SnapshotState struct {
	Done bool `json:"done"`
	// ConsistentPoint is where the slot's stream starts.
	ConsistentPoint pgoutput.LSN    `json:"consistent_point"`
	Tables          []TableProgress `json:"tables"`
	// Rows is the count of "r" events emitted, the next one's position.
	Rows int64 `json:"rows"`
	// Boundaries record resumptions under a later snapshot (see snapshot.go).
	Boundaries []Boundary `json:"boundaries,omitempty"`
}

// TableProgress is one table's snapshot progress.
type TableProgress struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Done   bool   `json:"done"`
	// LastKey is the text form of the primary key of the last row emitted
	// (nil before the first chunk).
	LastKey []string `json:"last_key,omitempty"`
	Rows    int64    `json:"rows"`
}

// Boundary: changes of Schema.Name committed before LSN whose key sorts
// after AfterKey (every key when AfterKey is nil) are already reflected in
// rows read under the snapshot taken at LSN, so the stream skips them.
type Boundary struct {
	Schema   string       `json:"schema"`
	Name     string       `json:"name"`
	AfterKey []string     `json:"after_key,omitempty"`
	KeyTypes []uint32     `json:"key_types,omitempty"`
	LSN      pgoutput.LSN `json:"lsn"`
}

// ErrCheckpointTopicMissing means a slot exists but its checkpoint topic
// does not: what Kafka holds is unknown, so the relay refuses to guess.
var ErrCheckpointTopicMissing = errors.New("relay: the slot exists but the checkpoint topic is missing; run `bulwark cdc resnapshot` to start over with a new snapshot")

// ErrCheckpointUnreadable means the checkpoint topic could not be read to
// its stable end within checkpointReadTimeout. The relay retries (the
// session restarts); `bulwark cdc status` reports it.
var ErrCheckpointUnreadable = errors.New("relay: checkpoint topic not readable to its stable end")

// readCheckpoint returns the last committed checkpoint of slot (nil if
// none; a tombstone also reads as nil) and whether the topic exists. Call
// it after the transactional producer has been initialised, so that any
// transaction of an older instance is aborted and the read is final.
//
// It reads with read_committed up to the last stable offset listed at the
// start, tracking the fetch position (broker.ReadRange) rather than
// waiting for a record at the last offset: that record may belong to an
// aborted transaction, which a read_committed fetch never returns (an
// earlier version waited for it, and a crash of the embedded broker made
// the relay wait forever). Bounded by checkpointReadTimeout.
func readCheckpoint(ctx context.Context, cl *kgo.Client, topic, slot string) (*Checkpoint, bool, error) {
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint: list offsets: %w", err)
	}
	end, ok := ends.Lookup(topic, 0)
	if !ok || errors.Is(end.Err, kerr.UnknownTopicOrPartition) {
		return nil, false, nil
	}
	if end.Err != nil {
		return nil, true, fmt.Errorf("checkpoint: list offsets: %w", end.Err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, true, fmt.Errorf("checkpoint: list start offsets: %w", err)
	}
	start, _ := starts.Lookup(topic, 0)
	if end.Offset <= start.Offset {
		return nil, true, nil
	}
	rctx, cancel := context.WithTimeout(ctx, checkpointReadTimeout)
	defer cancel()
	var last *Checkpoint
	err = broker.ReadRange(rctx, cl, topic, 0, start.Offset, end.Offset, kgo.ReadCommitted(), func(r *kgo.Record) error {
		if r.Attrs.IsControl() || string(r.Key) != slot {
			return nil
		}
		if r.Value == nil {
			last = nil
			return nil
		}
		var c Checkpoint
		if err := json.Unmarshal(r.Value, &c); err != nil {
			return fmt.Errorf("checkpoint: record at offset %d: %w", r.Offset, err)
		}
		last = &c
		return nil
	})
	if err != nil {
		if ctx.Err() == nil && (rctx.Err() != nil || errors.Is(err, broker.ErrRangeUnreachable)) {
			return nil, true, fmt.Errorf("%w: %s from %d to %d within %v: %w", ErrCheckpointUnreadable, topic, start.Offset, end.Offset, checkpointReadTimeout, err)
		}
		return nil, true, fmt.Errorf("checkpoint: read %s: %w", topic, err)
	}
	return last, true, nil
}

// checkpointReadTimeout bounds reading the checkpoint topic (one
// partition, compacted: a few records per slot, read in a few fetches).
const checkpointReadTimeout = 30 * time.Second

func encodeCheckpoint(c *Checkpoint) []byte {
	c.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("relay: encode checkpoint: %v", err)) // plain struct: cannot fail
	}
	return b
}
