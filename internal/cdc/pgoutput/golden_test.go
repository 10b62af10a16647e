package pgoutput_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/cdc/pgoutput"
	"github.com/bulwark-ledger/bulwark/internal/cdc/repl"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

var update = flag.Bool("update", false, "capture a new stream from PostgreSQL and rewrite testdata")

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// captureWorkload exercises every message type pgoutput v2 sends.
var captureWorkload = []string{
	`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
	`CREATE TABLE kinds (id bigint PRIMARY KEY, b bool, i2 smallint, i4 int, n numeric, f float8, t text,
		ts timestamp, tz timestamptz, d date, j json, jb jsonb, by bytea, u uuid, arr int[], m mood, big text)`,
	`CREATE TABLE full_ident (a int, b text)`,
	`ALTER TABLE full_ident REPLICA IDENTITY FULL`,
	`CREATE TABLE composite (k1 text, k2 int, v text, PRIMARY KEY (k1, k2))`,
	`CREATE PUBLICATION golden FOR TABLE kinds, full_ident, composite`,
	"SLOT",
	`INSERT INTO kinds VALUES (1, true, -2, 4, 12345.678901234567890, 1.5e300, 'héllo "q"', '2024-01-02 03:04:05.678',
		'2024-01-02 03:04:05.678+02', '2024-02-29', '{"a": [1,2]}', '{"b": null}', '\xdeadbeef',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1,2,NULL}', 'happy', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g))`,
	`INSERT INTO kinds (id, n, f) VALUES (2, 'NaN', '-Infinity')`,
	`UPDATE kinds SET i4 = 5 WHERE id = 1`, // big is TOASTed and unchanged
	`UPDATE kinds SET id = 3 WHERE id = 2`, // key change: old key sent
	`DELETE FROM kinds WHERE id = 3`,
	`INSERT INTO full_ident VALUES (1, 'one'), (2, NULL)`,
	`UPDATE full_ident SET b = 'uno' WHERE a = 1`,
	`DELETE FROM full_ident WHERE a = 2`,
	`INSERT INTO composite VALUES ('a', 1, 'x')`,
	`BEGIN; INSERT INTO composite VALUES ('b', 1, 'y'); SAVEPOINT s1; INSERT INTO composite VALUES ('c', 1, 'z'); ROLLBACK TO s1; INSERT INTO composite VALUES ('d', 1, 'w'); COMMIT`,
	`BEGIN; INSERT INTO composite VALUES ('rolled', 1, 'back'); ROLLBACK`,
	`SELECT pg_logical_emit_message(true, 'golden', 'transactional')`,
	`SELECT pg_logical_emit_message(false, 'golden', 'not transactional')`,
	`ALTER TABLE composite ADD COLUMN extra int DEFAULT 7`,
	`INSERT INTO composite VALUES ('e', 1, 'v', 8)`,
	`ALTER TABLE composite DROP COLUMN v`,
	`UPDATE composite SET extra = 9 WHERE k1 = 'e'`,
	// Over logical_decoding_work_mem (64kB here): streamed in progress.
	`BEGIN; INSERT INTO composite SELECT 'big' || g, g, g FROM generate_series(1, 800) g;
		SAVEPOINT s2; INSERT INTO composite SELECT 'gone' || g, g, g FROM generate_series(1, 800) g; ROLLBACK TO s2;
		UPDATE composite SET extra = extra + 1 WHERE k1 LIKE 'big1%'; COMMIT`,
	`BEGIN; INSERT INTO composite SELECT 'abort' || g, g, g FROM generate_series(1, 800) g; ROLLBACK`,
	`TRUNCATE composite, full_ident`,
	`SELECT pg_logical_emit_message(true, 'golden', 'end')`,
}

// capture runs captureWorkload and returns every XLogData payload up to
// the final 'end' message.
func capture(t *testing.T) [][]byte {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbURL := pgtest.NewEmptyDB(t)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rc, err := repl.Connect(ctx, dbURL+"&options=-c%20logical_decoding_work_mem%3D64kB")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(ctx)
	if _, err := rc.IdentifySystem(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sql := range captureWorkload {
		if sql == "SLOT" {
			if _, err := rc.CreateSlot(ctx, "golden", true); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	st, err := rc.StartReplication(ctx, "golden", 0, repl.Options{Publications: []string{"golden"}, Streaming: true, Messages: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out [][]byte
	for {
		f, err := st.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Kind != 'w' {
			continue
		}
		out = append(out, f.Data)
		if m, err := pgoutput.Parse(f.Data, false); err == nil {
			if lm, ok := m.(*pgoutput.LogicalMessage); ok && string(lm.Content) == "end" {
				return out
			}
		}
	}
}

func writeFrames(frames [][]byte) []byte {
	var b bytes.Buffer
	for _, f := range frames {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(f)))
		b.Write(f)
	}
	return b.Bytes()
}

func readFrames(t *testing.T, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := binary.BigEndian.Uint32(b)
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

// render prints one line per message: its type and content, with rows
// decoded; LSNs, xids and times are kept since the capture is fixed.
func render(t *testing.T, frames [][]byte) string {
	d := pgoutput.NewDecoder()
	var b strings.Builder
	rowJSON := func(rel *pgoutput.Relation, tup []pgoutput.TupleColumn) string {
		if tup == nil {
			return "-"
		}
		row, err := d.Row(rel, tup)
		if err != nil {
			t.Fatalf("row: %v", err)
		}
		m := map[string]any{}
		for _, f := range row.Fields {
			m[f.Name] = f.Value
		}
		if v, ok := m["big"].(string); ok && len(v) > 20 {
			m["big"] = fmt.Sprintf("<%d bytes>", len(v))
		}
		js, _ := json.Marshal(m)
		return fmt.Sprintf("%s unchanged=%v", js, row.Unchanged)
	}
	for _, f := range frames {
		m, err := d.Decode(f)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		switch m := m.(type) {
		case *pgoutput.Insert:
			rel, _ := d.Relation(m.RelationID)
			fmt.Fprintf(&b, "Insert xid=%d %s new=%s\n", m.Xid, rel.Name, rowJSON(rel, m.New))
		case *pgoutput.Update:
			rel, _ := d.Relation(m.RelationID)
			fmt.Fprintf(&b, "Update xid=%d %s old(%c)=%s new=%s\n", m.Xid, rel.Name, max(m.OldKind, '-'), rowJSON(rel, m.Old), rowJSON(rel, m.New))
		case *pgoutput.Delete:
			rel, _ := d.Relation(m.RelationID)
			fmt.Fprintf(&b, "Delete xid=%d %s old(%c)=%s\n", m.Xid, rel.Name, m.OldKind, rowJSON(rel, m.Old))
		case *pgoutput.Relation:
			fmt.Fprintf(&b, "Relation xid=%d %s.%s ident=%c cols=%+v\n", m.Xid, m.Namespace, m.Name, m.ReplicaIdentity, m.Columns)
		case *pgoutput.Truncate:
			fmt.Fprintf(&b, "Truncate xid=%d options=%d relations=%d\n", m.Xid, m.Options, len(m.RelationIDs))
		case *pgoutput.LogicalMessage:
			fmt.Fprintf(&b, "Message xid=%d transactional=%v prefix=%s content=%q\n", m.Xid, m.Transactional, m.Prefix, m.Content)
		default:
			fmt.Fprintf(&b, "%T %+v\n", m, m)
		}
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	bin := filepath.Join("testdata", "stream.bin")
	golden := filepath.Join("testdata", "stream.golden")
	if *update {
		frames := capture(t)
		if err := os.WriteFile(bin, writeFrames(frames), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(render(t, frames)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to capture)", err)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := render(t, readFrames(t, data)); got != string(want) {
		t.Errorf("decoded stream differs from %s; got:\n%s", golden, got)
	}
}

// TestLiveCapture decodes a freshly captured stream: the server's current
// output must still decode, and every message kind must appear.
func TestLiveCapture(t *testing.T) {
	frames := capture(t)
	out := render(t, frames)
	for _, kind := range []string{"*pgoutput.Begin", "*pgoutput.Commit", "Relation", "*pgoutput.Type", "Insert", "Update", "Delete",
		"Truncate", "Message", "*pgoutput.StreamStart", "*pgoutput.StreamStop", "*pgoutput.StreamCommit", "*pgoutput.StreamAbort"} {
		if !strings.Contains(out, kind) {
			t.Errorf("no %s in captured stream:\n%s", kind, out)
		}
	}
}
