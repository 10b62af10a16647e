package pgoutput

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxColumns bounds the column count a Relation or tuple may announce;
// PostgreSQL's own limit is 1,664 (MaxTupleAttributeNumber).
const MaxColumns = 1664

// MaxTruncateRelations bounds the relation list of one Truncate message.
const MaxTruncateRelations = 1 << 16

// ErrShort is returned when a message ends before its announced content.
var ErrShort = errors.New("pgoutput: message truncated")

// reader walks a message body; the first error sticks and later reads
// return zero values, so parse functions check err once at the end.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = ErrShort
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) u32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// str reads a NUL-terminated string.
func (r *reader) str() string {
	if r.err != nil {
		return ""
	}
	for i, c := range r.b {
		if c == 0 {
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
	}
	r.err = fmt.Errorf("%w: unterminated string", ErrShort)
	return ""
}

func (r *reader) tuple() []TupleColumn {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	if n > MaxColumns {
		r.err = fmt.Errorf("pgoutput: tuple of %d columns exceeds %d", n, MaxColumns)
		return nil
	}
	cols := make([]TupleColumn, n)
	for i := range cols {
		kind := r.u8()
		cols[i].Kind = kind
		switch kind {
		case TupleNull, TupleUnchanged:
		case TupleText, TupleBinary:
			cols[i].Data = r.take(int(int32(r.u32())))
		default:
			if r.err == nil {
				r.err = fmt.Errorf("pgoutput: unknown tuple column kind %q", kind)
			}
		}
		if r.err != nil {
			return nil
		}
	}
	return cols
}

// Parse decodes one pgoutput message. inStream tells whether a Stream Start
// block is open: inside one, change, relation, type and message records
// carry the (sub)transaction id. Byte slices in the result alias data.
func Parse(data []byte, inStream bool) (Message, error) {
	if len(data) == 0 {
		return nil, ErrShort
	}
	r := &reader{b: data[1:]}
	var xid uint32
	readXid := func() {
		if inStream {
			xid = r.u32()
		}
	}
	var m Message
	switch data[0] {
	case 'B':
		m = &Begin{FinalLSN: LSN(r.u64()), CommitTime: PGTime(int64(r.u64())), Xid: r.u32()}
	case 'C':
		m = &Commit{Flags: r.u8(), CommitLSN: LSN(r.u64()), EndLSN: LSN(r.u64()), CommitTime: PGTime(int64(r.u64()))}
	case 'O':
		m = &Origin{CommitLSN: LSN(r.u64()), Name: r.str()}
	case 'R':
		readXid()
		m = parseRelation(r, xid)
	case 'Y':
		readXid()
		m = &Type{Xid: xid, OID: r.u32(), Namespace: r.str(), Name: r.str()}
	case 'I':
		readXid()
		m = parseInsert(r, xid)
	case 'U':
		readXid()
		m = parseUpdate(r, xid)
	case 'D':
		readXid()
		m = parseDelete(r, xid)
	case 'T':
		readXid()
		m = parseTruncate(r, xid)
	case 'M':
		readXid()
		msg := &LogicalMessage{Xid: xid, Transactional: r.u8()&1 == 1, LSN: LSN(r.u64()), Prefix: r.str()}
		msg.Content = r.take(int(int32(r.u32())))
		m = msg
	case 'S':
		m = &StreamStart{Xid: r.u32(), FirstSegment: r.u8() == 1}
	case 'E':
		m = &StreamStop{}
	case 'c':
		m = &StreamCommit{Xid: r.u32(), Flags: r.u8(), CommitLSN: LSN(r.u64()), EndLSN: LSN(r.u64()), CommitTime: PGTime(int64(r.u64()))}
	case 'A':
		// Protocol v4 adds the abort LSN and time; v2 ends here.
		m = &StreamAbort{Xid: r.u32(), SubXid: r.u32()}
	default:
		return nil, fmt.Errorf("pgoutput: unknown message type %q", data[0])
	}
	if r.err != nil {
		return nil, fmt.Errorf("pgoutput: message %q: %w", data[0], r.err)
	}
	return m, nil
}

func parseRelation(r *reader, xid uint32) Message {
	rel := &Relation{Xid: xid, RelationID: r.u32(), Namespace: r.str(), Name: r.str(), ReplicaIdentity: r.u8()}
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	if n > MaxColumns {
		r.err = fmt.Errorf("relation of %d columns exceeds %d", n, MaxColumns)
		return nil
	}
	rel.Columns = make([]Column, n)
	for i := range rel.Columns {
		rel.Columns[i] = Column{Key: r.u8()&1 == 1, Name: r.str(), TypeOID: r.u32(), TypMod: int32(r.u32())}
	}
	return rel
}

func parseInsert(r *reader, xid uint32) Message {
	m := &Insert{Xid: xid, RelationID: r.u32()}
	if k := r.u8(); k != 'N' && r.err == nil {
		r.err = fmt.Errorf("insert: expected 'N', got %q", k)
	}
	m.New = r.tuple()
	return m
}

func parseUpdate(r *reader, xid uint32) Message {
	m := &Update{Xid: xid, RelationID: r.u32()}
	k := r.u8()
	if k == 'K' || k == 'O' {
		m.OldKind = k
		m.Old = r.tuple()
		k = r.u8()
	}
	if k != 'N' && r.err == nil {
		r.err = fmt.Errorf("update: expected 'N', got %q", k)
	}
	m.New = r.tuple()
	return m
}

func parseDelete(r *reader, xid uint32) Message {
	m := &Delete{Xid: xid, RelationID: r.u32(), OldKind: r.u8()}
	if m.OldKind != 'K' && m.OldKind != 'O' && r.err == nil {
		r.err = fmt.Errorf("delete: expected 'K' or 'O', got %q", m.OldKind)
	}
	m.Old = r.tuple()
	return m
}

func parseTruncate(r *reader, xid uint32) Message {
	n := int(r.u32())
	m := &Truncate{Xid: xid, Options: r.u8()}
	if r.err != nil {
		return nil
	}
	if n > MaxTruncateRelations || n*4 > len(r.b) {
		r.err = fmt.Errorf("truncate of %d relations: %w", n, ErrShort)
		return nil
	}
	m.RelationIDs = make([]uint32, n)
	for i := range m.RelationIDs {
		m.RelationIDs[i] = r.u32()
	}
	return m
}
