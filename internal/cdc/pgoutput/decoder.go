package pgoutput

import (
	"errors"
	"fmt"
)

// Decoder parses a session's messages in order, tracking open stream blocks,
// relations and announced types. It is not safe for concurrent use.
type Decoder struct {
	inStream  bool
	relations map[uint32]*Relation
	types     map[uint32]*Type
}

// NewDecoder returns a Decoder for one replication session.
func NewDecoder() *Decoder {
	return &Decoder{relations: map[uint32]*Relation{}, types: map[uint32]*Type{}}
}

// Decode parses data and updates the session state. Relations replace
// earlier definitions of the same id, so a column added or dropped
// mid-stream applies to the changes that follow it.
func (d *Decoder) Decode(data []byte) (Message, error) {
	m, err := Parse(data, d.inStream)
	if err != nil {
		return nil, err
	}
	switch m := m.(type) {
	case *StreamStart:
		if d.inStream {
			return nil, errors.New("pgoutput: Stream Start inside an open stream block")
		}
		d.inStream = true
	case *StreamStop:
		if !d.inStream {
			return nil, errors.New("pgoutput: Stream Stop without Stream Start")
		}
		d.inStream = false
	case *Relation:
		d.relations[m.RelationID] = m
	case *Type:
		d.types[m.OID] = m
	}
	return m, nil
}

// Relation returns the cached definition of id.
func (d *Decoder) Relation(id uint32) (*Relation, bool) {
	r, ok := d.relations[id]
	return r, ok
}

// InStream reports whether a Stream Start block is open.
func (d *Decoder) InStream() bool { return d.inStream }

// Field is one named column value of a row.
type Field struct {
	Name  string
	Value any // nil for SQL NULL
}

// Row is a decoded tuple: Fields in column order, and the names of unchanged
// TOAST columns, which PostgreSQL did not send and which are therefore
// absent from Fields (never reported as null).
type Row struct {
	Fields    []Field
	Unchanged []string
}

// Row decodes tuple against rel. A tuple whose width differs from the
// relation is an error: it means a Relation message was missed.
func (d *Decoder) Row(rel *Relation, tuple []TupleColumn) (Row, error) {
	if len(tuple) != len(rel.Columns) {
		return Row{}, fmt.Errorf("pgoutput: %s.%s: tuple has %d columns, relation %d", rel.Namespace, rel.Name, len(tuple), len(rel.Columns))
	}
	row := Row{Fields: make([]Field, 0, len(tuple))}
	for i, c := range tuple {
		col := rel.Columns[i]
		switch c.Kind {
		case TupleNull:
			row.Fields = append(row.Fields, Field{Name: col.Name})
		case TupleUnchanged:
			row.Unchanged = append(row.Unchanged, col.Name)
		case TupleText:
			v, err := Value(col.TypeOID, c.Data, d.knownType)
			if err != nil {
				return Row{}, fmt.Errorf("%s.%s column %s: %w", rel.Namespace, rel.Name, col.Name, err)
			}
			row.Fields = append(row.Fields, Field{Name: col.Name, Value: v})
		default:
			return Row{}, fmt.Errorf("pgoutput: %s.%s column %s: tuple kind %q not supported (binary off)", rel.Namespace, rel.Name, col.Name, c.Kind)
		}
	}
	return row, nil
}

func (d *Decoder) knownType(oid uint32) bool {
	_, ok := d.types[oid]
	return ok
}
