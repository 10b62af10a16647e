package relay

import (
	"context"
	"fmt"

	"github.com/bulwark-ledger/bulwark/internal/cdc/pgoutput"
)

// relation caches a Relation and its key columns: the primary key from
// the catalog, else the replica identity columns the message flags (all
// columns with REPLICA IDENTITY FULL).
func (s *session) relation(ctx context.Context, rel *pgoutput.Relation) error {
	t := &table{schema: rel.Namespace, name: rel.Name, topic: topicName(s.cfg.TopicPrefix, rel.Namespace, rel.Name), rel: rel}
	rows, err := s.conn.Query(ctx, `SELECT a.attname, a.atttypid FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = $1 AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)`, rel.RelationID)
	if err != nil {
		return fmt.Errorf("primary key of %s.%s: %w", rel.Namespace, rel.Name, err)
	}
	for rows.Next() {
		var name string
		var oid uint32
		if err := rows.Scan(&name, &oid); err != nil {
			rows.Close()
			return err
		}
		t.keyCols = append(t.keyCols, name)
		t.keyTypes = append(t.keyTypes, oid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("primary key of %s.%s: %w", rel.Namespace, rel.Name, err)
	}
	// Domains decode as their base type, as snapshot rows do (a row
	// description reports the base type): a numeric domain stays a number.
	for i, c := range rel.Columns {
		if c.TypeOID < pgoutput.FirstNormalOID {
			continue
		}
		var base uint32
		err := s.conn.QueryRow(ctx, `WITH RECURSIVE d(oid, base, typtype) AS (
				SELECT oid, typbasetype, typtype FROM pg_type WHERE oid = $1
				UNION ALL SELECT t.oid, t.typbasetype, t.typtype FROM pg_type t JOIN d ON t.oid = d.base WHERE d.typtype = 'd')
			SELECT oid FROM d WHERE typtype <> 'd' LIMIT 1`, c.TypeOID).Scan(&base)
		if err == nil {
			rel.Columns[i].TypeOID = base
		}
	}
	if len(t.keyCols) == 0 {
		for _, c := range rel.Columns {
			if c.Key {
				t.keyCols = append(t.keyCols, c.Name)
				t.keyTypes = append(t.keyTypes, c.TypeOID)
			}
		}
	}
	s.tables[rel.RelationID] = t
	return nil
}

func (s *session) table(id uint32) (*table, error) {
	t, ok := s.tables[id]
	if !ok {
		return nil, fmt.Errorf("relay: change for relation %d before its Relation message", id)
	}
	return t, nil
}

// decodeChange turns a row message into changes (several for a Truncate).
func (s *session) decodeChange(m pgoutput.Message, lsn pgoutput.LSN) ([]*change, error) {
	switch m := m.(type) {
	case *pgoutput.Insert:
		return s.rowChange(m.Xid, m.RelationID, pgoutput.Message(m), nil, 0, m.New, lsn)
	case *pgoutput.Update:
		return s.rowChange(m.Xid, m.RelationID, m, m.Old, m.OldKind, m.New, lsn)
	case *pgoutput.Delete:
		return s.rowChange(m.Xid, m.RelationID, m, m.Old, m.OldKind, nil, lsn)
	case *pgoutput.Truncate:
		out := make([]*change, 0, len(m.RelationIDs))
		for _, id := range m.RelationIDs {
			t, err := s.table(id)
			if err != nil {
				return nil, err
			}
			out = append(out, &change{SubXid: m.Xid, Op: OpTruncate, Schema: t.schema, Table: t.name, Topic: t.topic, LSN: lsn})
		}
		return out, nil
	}
	return nil, nil
}

func (s *session) rowChange(xid, relID uint32, m pgoutput.Message, oldTup []pgoutput.TupleColumn, oldKind byte,
	newTup []pgoutput.TupleColumn, lsn pgoutput.LSN) ([]*change, error) {
	t, err := s.table(relID)
	if err != nil {
		return nil, err
	}
	c := &change{SubXid: xid, Schema: t.schema, Table: t.name, Topic: t.topic, LSN: lsn}
	var keyFrom []pgoutput.Field
	var keyTup []pgoutput.TupleColumn
	if oldTup != nil {
		row, err := s.dec.Row(t.rel, oldTup)
		if err != nil {
			return nil, err
		}
		if oldKind == 'K' {
			row.Fields = identityFields(t.rel, row.Fields)
		}
		if c.Before, err = rowJSON(row.Fields); err != nil {
			return nil, err
		}
		keyFrom, keyTup = row.Fields, oldTup
	}
	if newTup != nil {
		row, err := s.dec.Row(t.rel, newTup)
		if err != nil {
			return nil, err
		}
		if c.After, err = rowJSON(row.Fields); err != nil {
			return nil, err
		}
		c.Unchanged = row.Unchanged
		keyFrom, keyTup = row.Fields, newTup
	}
	switch m.(type) {
	case *pgoutput.Insert:
		c.Op = OpCreate
	case *pgoutput.Update:
		c.Op = OpUpdate
	default:
		c.Op = OpDelete
	}
	if c.Key, err = keyJSON(keyFrom, t.keyCols); err != nil {
		return nil, err
	}
	if s.hasBoundaries() {
		c.KeyText = keyText(t, keyTup)
	}
	return []*change{c}, nil
}

// identityFields keeps the replica identity columns of a 'K' tuple; the
// others are sent as nulls that mean "not sent", not NULL.
func identityFields(rel *pgoutput.Relation, fields []pgoutput.Field) []pgoutput.Field {
	out := fields[:0:0]
	for _, f := range fields {
		for _, c := range rel.Columns {
			if c.Name == f.Name && c.Key {
				out = append(out, f)
			}
		}
	}
	return out
}

func keyText(t *table, tup []pgoutput.TupleColumn) []string {
	out := make([]string, 0, len(t.keyCols))
	for _, k := range t.keyCols {
		for i, c := range t.rel.Columns {
			if c.Name == k && i < len(tup) {
				out = append(out, string(tup[i].Data))
			}
		}
	}
	return out
}
