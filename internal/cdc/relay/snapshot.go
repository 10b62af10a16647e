package relay

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/cdc/pgoutput"
	"github.com/bulwark-ledger/bulwark/internal/cdc/repl"
)

// The initial snapshot reads every published table under the snapshot the
// slot exported when it was created, so the rows ("r" events) are the state
// at the slot's consistent point and the stream continues from exactly
// there: no gap, no overlap. Tables are read in primary-key chunks, one
// Kafka transaction per chunk whose checkpoint records the last key read.
//
// An exported snapshot dies with the process that holds it. When a relay
// dies mid-snapshot, the next one takes a fresh snapshot from a temporary
// slot (consistent point C2) for the rows not yet read, and records a
// Boundary: stream changes committed before C2 to keys after the last key
// read are already in those rows, so the stream skips them. Keys are
// compared in Go, which is exact for integer, text (read in "C" collation
// order) and uuid keys; other key types, and tables without a primary key,
// cannot resume and ask for `bulwark cdc resnapshot`.

type pubTable struct {
	schema, name string
	cols         []string // published columns (generated ones are not)
	keyCols      []string
	keyTypes     []uint32
	keyTypeNames []string
}

func publishedTables(ctx context.Context, conn *pgx.Conn, pub string) ([]TableProgress, error) {
	rows, err := conn.Query(ctx, `SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2`, pub)
	if err != nil {
		return nil, fmt.Errorf("list published tables: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableProgress, error) {
		var t TableProgress
		return t, r.Scan(&t.Schema, &t.Name)
	})
}

func (s *session) initialSnapshot(ctx context.Context, rc *repl.Conn, epoch int) error {
	tables, err := publishedTables(ctx, s.conn, s.cfg.Publication)
	if err != nil {
		return err
	}
	slot, err := rc.CreateSlot(ctx, s.cfg.Slot, false)
	if err != nil {
		return err
	}
	s.ckpt = Checkpoint{Slot: s.cfg.Slot, Epoch: epoch, EndLSN: slot.ConsistentPoint,
		Snapshot: &SnapshotState{ConsistentPoint: slot.ConsistentPoint, Tables: tables}}
	if err := s.sink.writeCheckpoint(ctx, &s.ckpt); err != nil {
		return err
	}
	s.r.cfg.Logger.Info("cdc snapshot started", "slot", s.cfg.Slot, "consistent_point", slot.ConsistentPoint.String(), "tables", len(tables))
	return s.readSnapshot(ctx, slot.Snapshot)
}

func (s *session) resumeSnapshot(ctx context.Context) error {
	rc2, err := repl.Connect(ctx, s.cfg.PostgresURL)
	if err != nil {
		return err
	}
	defer rc2.Close(context.Background())
	temp := fmt.Sprintf("%s_resume_%d", s.cfg.Slot, time.Now().UnixNano()%1e9)
	if len(temp) > 63 {
		temp = temp[len(temp)-63:]
	}
	slot, err := rc2.CreateSlot(ctx, temp, true)
	if err != nil {
		return err
	}
	snap := s.ckpt.Snapshot
	for _, t := range snap.Tables {
		if t.Done {
			continue
		}
		b := Boundary{Schema: t.Schema, Name: t.Name, AfterKey: t.LastKey, LSN: slot.ConsistentPoint}
		if t.LastKey != nil || t.Rows > 0 {
			pt, err := s.tableKey(ctx, t.Schema, t.Name)
			if err != nil {
				return err
			}
			if err := resumable(pt); err != nil {
				return err
			}
			b.KeyTypes = pt.keyTypes
		}
		snap.Boundaries = append(snap.Boundaries, b)
	}
	s.r.cfg.Logger.Info("cdc snapshot resumed under a new snapshot", "slot", s.cfg.Slot, "lsn", slot.ConsistentPoint.String())
	return s.readSnapshot(ctx, slot.Snapshot)
}

func resumable(t pubTable) error {
	if len(t.keyCols) == 0 {
		return fmt.Errorf("%w: snapshot of %s.%s (no primary key) was interrupted and cannot resume: run `bulwark cdc resnapshot`", errConfig, t.schema, t.name)
	}
	for _, oid := range t.keyTypes {
		if !comparableKey(oid) {
			return fmt.Errorf("%w: snapshot of %s.%s (key type OID %d) was interrupted and cannot resume: run `bulwark cdc resnapshot`", errConfig, t.schema, t.name, oid)
		}
	}
	return nil
}

func comparableKey(oid uint32) bool {
	switch oid {
	case pgoutput.OIDInt2, pgoutput.OIDInt4, pgoutput.OIDInt8, pgoutput.OIDText, pgoutput.OIDVarchar,
		pgoutput.OIDBpchar, pgoutput.OIDName, pgoutput.OIDUUID:
		return true
	}
	return false
}

func textual(oid uint32) bool {
	return oid == pgoutput.OIDText || oid == pgoutput.OIDVarchar || oid == pgoutput.OIDBpchar || oid == pgoutput.OIDName
}

func (s *session) tableKey(ctx context.Context, schema, name string) (pubTable, error) {
	t := pubTable{schema: schema, name: name}
	rows, err := s.conn.Query(ctx, `SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod) FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = ($1 || '.' || $2)::regclass AND i.indisprimary
		ORDER BY array_position(i.indkey::int2[], a.attnum)`, pgx.Identifier{schema}.Sanitize(), pgx.Identifier{name}.Sanitize())
	if err != nil {
		return t, fmt.Errorf("primary key of %s.%s: %w", schema, name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var col, typ string
		var oid uint32
		if err := rows.Scan(&col, &oid, &typ); err != nil {
			return t, err
		}
		t.keyCols, t.keyTypes, t.keyTypeNames = append(t.keyCols, col), append(t.keyTypes, oid), append(t.keyTypeNames, typ)
	}
	if err := rows.Err(); err != nil {
		return t, err
	}
	rows.Close()
	crows, err := s.conn.Query(ctx, `SELECT attname FROM pg_attribute
		WHERE attrelid = ($1 || '.' || $2)::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
		ORDER BY attnum`, pgx.Identifier{schema}.Sanitize(), pgx.Identifier{name}.Sanitize())
	if err != nil {
		return t, fmt.Errorf("columns of %s.%s: %w", schema, name, err)
	}
	t.cols, err = pgx.CollectRows(crows, pgx.RowTo[string])
	return t, err
}

// readSnapshot reads every unfinished table under the exported snapshot.
func (s *session) readSnapshot(ctx context.Context, snapshot string) error {
	tx, err := s.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("snapshot: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLit(snapshot)); err != nil {
		return fmt.Errorf("snapshot: set transaction snapshot: %w", err)
	}
	snap := s.ckpt.Snapshot
	for i := range snap.Tables {
		for !snap.Tables[i].Done {
			if err := s.snapshotChunk(ctx, tx, &snap.Tables[i]); err != nil {
				return err
			}
		}
	}
	snap.Done = true
	if err := s.sink.writeCheckpoint(ctx, &s.ckpt); err != nil {
		return err
	}
	s.r.cfg.Logger.Info("cdc snapshot done", "slot", s.cfg.Slot, "rows", snap.Rows)
	return tx.Commit(ctx)
}

// snapshotChunk emits the next SnapshotChunkRows rows of t after t.LastKey
// and commits them with the checkpoint.
func (s *session) snapshotChunk(ctx context.Context, tx pgx.Tx, t *TableProgress) error {
	pt, err := s.tableKey(ctx, t.Schema, t.Name)
	if err != nil {
		return err
	}
	sql, args := chunkQuery(pt, t.LastKey, s.cfg.SnapshotChunkRows)
	rows, err := tx.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		return fmt.Errorf("snapshot %s.%s: %w", t.Schema, t.Name, err)
	}
	defer rows.Close()
	snap := s.ckpt.Snapshot
	topic := topicName(s.cfg.TopicPrefix, t.Schema, t.Name)
	n := 0
	for rows.Next() {
		fds := rows.FieldDescriptions()
		raw := rows.RawValues()
		fields := make([]pgoutput.Field, len(fds))
		keyText := make([]string, 0, len(pt.keyCols))
		for i, fd := range fds {
			fields[i].Name = fd.Name
			if raw[i] == nil {
				continue
			}
			v, err := pgoutput.Value(fd.DataTypeOID, raw[i], func(uint32) bool { return true })
			if err != nil {
				return fmt.Errorf("snapshot %s.%s column %s: %w", t.Schema, t.Name, fd.Name, err)
			}
			fields[i].Value = v
		}
		for _, k := range pt.keyCols {
			for i, fd := range fds {
				if fd.Name == k {
					keyText = append(keyText, string(raw[i]))
				}
			}
		}
		if err := s.emitRow(ctx, topic, t, pt, fields); err != nil {
			return err
		}
		t.LastKey = keyText
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("snapshot %s.%s: %w", t.Schema, t.Name, err)
	}
	if n < s.cfg.SnapshotChunkRows || len(pt.keyCols) == 0 {
		t.Done = true
	}
	if err := s.sink.writeCheckpoint(ctx, &s.ckpt); err != nil {
		return err
	}
	s.r.m.snapshotRows.Add(float64(n))
	_ = snap
	return nil
}

func (s *session) emitRow(ctx context.Context, topic string, t *TableProgress, pt pubTable, fields []pgoutput.Field) error {
	snap := s.ckpt.Snapshot
	after, err := rowJSON(fields)
	if err != nil {
		return err
	}
	key, err := keyJSON(fields, pt.keyCols)
	if err != nil {
		return err
	}
	ev := Event{ID: SnapshotEventID(snap.ConsistentPoint, snap.Rows), Op: OpRead, After: after,
		Source: Source{Database: s.dbName, Schema: t.Schema, Table: t.Name, LSN: snap.ConsistentPoint.String(),
			CommitLSN: snap.ConsistentPoint.String(), CommitTime: time.Now().UTC(), Pos: snap.Rows, Snapshot: true}}
	if err := s.produce(ctx, topic, key, &ev); err != nil {
		return err
	}
	snap.Rows++
	t.Rows++
	return nil
}

// chunkQuery selects the next rows after lastKey in key order; text keys
// sort in "C" collation so that Go can compare them bytewise.
func chunkQuery(t pubTable, lastKey []string, limit int) (string, []any) {
	from := pgx.Identifier{t.schema, t.name}.Sanitize()
	sel := make([]string, len(t.cols))
	for i, c := range t.cols {
		sel[i] = pgx.Identifier{c}.Sanitize()
	}
	list := strings.Join(sel, ", ")
	if len(t.keyCols) == 0 {
		return "SELECT " + list + " FROM " + from, nil
	}
	cols := make([]string, len(t.keyCols))
	params := make([]string, len(t.keyCols))
	args := make([]any, 0, len(lastKey))
	for i, c := range t.keyCols {
		cols[i] = pgx.Identifier{c}.Sanitize()
		params[i] = fmt.Sprintf("$%d::text::%s", i+1, t.keyTypeNames[i])
		if textual(t.keyTypes[i]) {
			cols[i] += ` COLLATE "C"`
			params[i] += ` COLLATE "C"`
		}
	}
	where := ""
	if lastKey != nil {
		where = fmt.Sprintf(" WHERE (%s) > (%s)", strings.Join(cols, ", "), strings.Join(params, ", "))
		for _, k := range lastKey {
			args = append(args, k)
		}
	}
	return fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s LIMIT %d", list, from, where, strings.Join(cols, ", "), limit), args
}

func quoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (s *session) hasBoundaries() bool {
	return s.ckpt.Snapshot != nil && len(s.ckpt.Snapshot.Boundaries) > 0
}

// coveredBySnapshot reports whether a resumed snapshot's rows already
// include change c of the transaction committed at commitLSN.
func (s *session) coveredBySnapshot(commitLSN pgoutput.LSN, c *change) bool {
	if !s.hasBoundaries() {
		return false
	}
	for _, b := range s.ckpt.Snapshot.Boundaries {
		if b.Schema != c.Schema || b.Name != c.Table || commitLSN >= b.LSN {
			continue
		}
		if b.AfterKey == nil || (c.KeyText != nil && keyAfter(c.KeyText, b.AfterKey, b.KeyTypes)) {
			return true
		}
	}
	return false
}

// keyAfter reports whether key sorts after bound (tuple order).
func keyAfter(key, bound []string, types []uint32) bool {
	for i := range min(len(key), len(bound), len(types)) {
		var c int
		switch types[i] {
		case pgoutput.OIDInt2, pgoutput.OIDInt4, pgoutput.OIDInt8:
			a, _ := strconv.ParseInt(key[i], 10, 64)
			b, _ := strconv.ParseInt(bound[i], 10, 64)
			c = cmpInt(a, b)
		default:
			c = strings.Compare(key[i], bound[i])
		}
		if c != 0 {
			return c > 0
		}
	}
	return false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
