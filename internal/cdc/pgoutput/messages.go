package pgoutput

import (
	"time"

	"github.com/bulwark-ledger/bulwark/internal/cdc/repl"
)

// LSN is a PostgreSQL write-ahead log position (the replication
// protocol's type, package repl).
type LSN = repl.LSN

// ParseLSN parses the textual LSN form "hi/lo"; see repl.ParseLSN.
func ParseLSN(s string) (LSN, error) { return repl.ParseLSN(s) }

// PGTime converts microseconds since 2000-01-01 UTC to a time.Time; see
// repl.PGTime.
func PGTime(us int64) time.Time { return repl.PGTime(us) }

// Message is one decoded pgoutput message.
type Message interface{ msgType() byte }

// Begin opens a (non-streamed) transaction.
type Begin struct {
	FinalLSN   LSN // LSN of the commit record
	CommitTime time.Time
	Xid        uint32
}

// Commit closes a (non-streamed) transaction.
type Commit struct {
	Flags      uint8
	CommitLSN  LSN // LSN of the commit record
	EndLSN     LSN // end of the commit record: the position to confirm
	CommitTime time.Time
}

// Origin names the replication origin of the transaction.
type Origin struct {
	CommitLSN LSN
	Name      string
}

// Column describes one column of a Relation.
type Column struct {
	Key     bool // part of the replica identity
	Name    string
	TypeOID uint32
	TypMod  int32
}

// Relation describes a table; it precedes the first change of the table in
// a session and is sent again whenever its definition changes.
type Relation struct {
	Xid             uint32 // only inside a stream
	RelationID      uint32
	Namespace       string
	Name            string
	ReplicaIdentity uint8 // 'd' default, 'n' nothing, 'f' full, 'i' index
	Columns         []Column
}

// Type describes a non-builtin data type used by a Relation.
type Type struct {
	Xid       uint32
	OID       uint32
	Namespace string
	Name      string
}

// Tuple kinds of TupleData columns.
const (
	TupleNull      = 'n'
	TupleUnchanged = 'u' // unchanged TOASTed value: not sent
	TupleText      = 't'
	TupleBinary    = 'b'
)

// TupleColumn is one column value of a tuple, still in wire form.
type TupleColumn struct {
	Kind byte
	Data []byte // for TupleText and TupleBinary
}

// Insert is a new row.
type Insert struct {
	Xid        uint32
	RelationID uint32
	New        []TupleColumn
}

// Update is a changed row. Old is the replica identity ('K') or the whole
// old row ('O', with REPLICA IDENTITY FULL), or nil when the key is
// unchanged and the identity is the default.
type Update struct {
	Xid        uint32
	RelationID uint32
	OldKind    byte // 0, 'K' or 'O'
	Old        []TupleColumn
	New        []TupleColumn
}

// Delete is a removed row; Old holds the key ('K') or the whole row ('O').
type Delete struct {
	Xid        uint32
	RelationID uint32
	OldKind    byte
	Old        []TupleColumn
}

// Truncate options.
const (
	TruncateCascade         = 1
	TruncateRestartIdentity = 2
)

// Truncate empties one or more relations.
type Truncate struct {
	Xid         uint32
	Options     uint8
	RelationIDs []uint32
}

// LogicalMessage is a pg_logical_emit_message payload.
type LogicalMessage struct {
	Xid           uint32
	Transactional bool
	LSN           LSN
	Prefix        string
	Content       []byte
}

// StreamStart opens a block of changes of an in-progress transaction.
type StreamStart struct {
	Xid          uint32
	FirstSegment bool
}

// StreamStop closes a StreamStart block.
type StreamStop struct{}

// StreamCommit commits a streamed transaction.
type StreamCommit struct {
	Xid        uint32
	Flags      uint8
	CommitLSN  LSN
	EndLSN     LSN
	CommitTime time.Time
}

// StreamAbort aborts a streamed transaction (Xid == SubXid) or one of its
// subtransactions.
type StreamAbort struct {
	Xid    uint32
	SubXid uint32
}

func (*Begin) msgType() byte          { return 'B' }
func (*Commit) msgType() byte         { return 'C' }
func (*Origin) msgType() byte         { return 'O' }
func (*Relation) msgType() byte       { return 'R' }
func (*Type) msgType() byte           { return 'Y' }
func (*Insert) msgType() byte         { return 'I' }
func (*Update) msgType() byte         { return 'U' }
func (*Delete) msgType() byte         { return 'D' }
func (*Truncate) msgType() byte       { return 'T' }
func (*LogicalMessage) msgType() byte { return 'M' }
func (*StreamStart) msgType() byte    { return 'S' }
func (*StreamStop) msgType() byte     { return 'E' }
func (*StreamCommit) msgType() byte   { return 'c' }
func (*StreamAbort) msgType() byte    { return 'A' }
