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

// readCheckpoint returns the last committed checkpoint of slot (nil if
// none; a tombstone also reads as nil) and whether the topic exists. Call
// it after the transactional producer has been initialised, so that any
// transaction of an older instance is aborted and the read is final.
func readCheckpoint(ctx context.Context, adm *kadm.Client, opts []kgo.Opt, topic, slot string) (*Checkpoint, bool, error) {
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
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records tell us we reached the end: the last offset before
		// the stable end is usually a commit or abort marker.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, true, err
	}
	defer cl.Close()
	// The read ends at the record or marker just before the stable end; a
	// bound keeps a broker that never serves it (or compacted it away) from
	// hanging the start: the session fails with this error and retries.
	rctx, cancel := context.WithTimeout(ctx, checkpointReadTimeout)
	defer cancel()
	var last *Checkpoint
	var bad error
	for {
		fs := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return nil, true, fmt.Errorf("checkpoint: read %s to offset %d: %w", topic, end.Offset, err)
		}
		for _, fe := range fs.Errors() {
			return nil, true, fmt.Errorf("checkpoint: fetch: %w", fe.Err)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end.Offset-1 {
				done = true
			}
			if r.Attrs.IsControl() || string(r.Key) != slot {
				return
			}
			if r.Value == nil {
				last = nil
				return
			}
			var c Checkpoint
			if err := json.Unmarshal(r.Value, &c); err != nil {
				bad = fmt.Errorf("checkpoint: record at offset %d: %w", r.Offset, err)
				return
			}
			last = &c
		})
		if bad != nil {
			return nil, true, bad
		}
		if done {
			return last, true, nil
		}
	}
}

// checkpointReadTimeout bounds reading the checkpoint topic (one
// partition, compacted: a few records per slot).
const checkpointReadTimeout = time.Minute

func encodeCheckpoint(c *Checkpoint) []byte {
	c.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("relay: encode checkpoint: %v", err)) // plain struct: cannot fail
	}
	return b
}
