package relay

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/cdc/pgoutput"
)

// Operations of the envelope.
const (
	OpCreate   = "c"
	OpUpdate   = "u"
	OpDelete   = "d"
	OpTruncate = "t"
	OpRead     = "r" // snapshot row
)

// Event is the JSON envelope of one change. Before and After are JSON
// objects in column order (nil when absent). Unchanged lists TOASTed columns
// that PostgreSQL did not resend on an update: they are absent from After
// and must not be read as null.
type Event struct {
	ID        string          `json:"id"`
	Op        string          `json:"op"`
	Before    json.RawMessage `json:"before"`
	After     json.RawMessage `json:"after"`
	Unchanged []string        `json:"unchanged_toast,omitempty"`
	Source    Source          `json:"source"`
}

// Source locates the change in PostgreSQL.
type Source struct {
	Database   string    `json:"db"`
	Schema     string    `json:"schema"`
	Table      string    `json:"table"`
	LSN        string    `json:"lsn"`        // of the change record
	CommitLSN  string    `json:"commit_lsn"` // of the transaction's commit record
	Xid        uint32    `json:"xid,omitempty"`
	CommitTime time.Time `json:"commit_time"`
	// Pos is the change's position within its transaction (0-based), or the
	// row's position within the snapshot for op "r".
	Pos      int64 `json:"pos"`
	Snapshot bool  `json:"snapshot,omitempty"`
}

// EventID is the deterministic id of the change at pos in the transaction
// committed at commitLSN: equal for every delivery of the same change, and
// ordered like the changes themselves.
func EventID(commitLSN pgoutput.LSN, pos int64) string {
	return fmt.Sprintf("%016X-%08d", uint64(commitLSN), pos)
}

// SnapshotEventID is the id of the pos-th row read under the snapshot taken
// at consistentPoint.
func SnapshotEventID(consistentPoint pgoutput.LSN, pos int64) string {
	return fmt.Sprintf("S%016X-%08d", uint64(consistentPoint), pos)
}

// rowJSON encodes fields as a JSON object in column order.
func rowJSON(fields []pgoutput.Field) (json.RawMessage, error) {
	b := make([]byte, 0, 64*len(fields))
	b = append(b, '{')
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f.Name)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, f.Value); err != nil {
			return nil, fmt.Errorf("column %s: %w", f.Name, err)
		}
	}
	return append(b, '}'), nil
}

// keyJSON encodes the key columns of fields as the record key; nil when
// keyCols is empty or a key column is missing.
func keyJSON(fields []pgoutput.Field, keyCols []string) (json.RawMessage, error) {
	if len(keyCols) == 0 {
		return nil, nil
	}
	sub := make([]pgoutput.Field, 0, len(keyCols))
	for _, k := range keyCols {
		found := false
		for _, f := range fields {
			if f.Name == k {
				sub = append(sub, f)
				found = true
				break
			}
		}
		if !found {
			return nil, nil
		}
	}
	return rowJSON(sub)
}

// topicName maps a table to its topic; characters Kafka rejects become '_'.
func topicName(prefix, schema, table string) string {
	return prefix + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, schema+"."+table)
}
