package relay_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/cdc/relay"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

type env struct {
	t    *testing.T
	url  string
	conn *pgx.Conn
	b    *broker.Embedded
}

func newEnv(t *testing.T, sqls ...string) *env {
	ctx := context.Background()
	url := pgtest.NewEmptyDB(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	exec(t, conn, sqls...)
	b, err := broker.StartEmbedded(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &env{t: t, url: url, conn: conn, b: b}
}

func (e *env) config() relay.Config {
	return relay.Config{PostgresURL: e.url, Brokers: e.b.Addrs(), Slot: "s", Publication: "p",
		SnapshotChunkRows: 100, HeartbeatInterval: 200 * time.Millisecond, SpillDir: e.t.TempDir(),
		FlushInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(testWriter{e.t}, nil))}
}

// testWriter sends relay logs to the test log, shown on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// start runs a relay until the returned stop is called; stop returns Run's error.
func (e *env) start(cfg relay.Config) (stop func() error, done <-chan error) {
	r, err := relay.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- r.Run(ctx) }()
	return func() error { cancel(); return <-ch }, ch
}

func TestFencedByNewerInstance(t *testing.T) {
	e := newEnv(t, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE PUBLICATION p FOR TABLE a`)
	stop1, done1 := e.start(e.config())
	consume(t, e.b.Addrs(), "bulwark.cdc.checkpoints", 1)
	stop2, _ := e.start(e.config())
	defer func() { _ = stop2() }() // how the relay ended is asserted where it matters
	// The older relay learns it is fenced at its next Kafka commit.
	for i := 0; ; i++ {
		exec(t, e.conn, `INSERT INTO a VALUES (`+itoa(i)+`)`)
		select {
		case err := <-done1:
			if !errors.Is(err, relay.ErrFenced) {
				t.Fatalf("old relay ended with %v, want ErrFenced", err)
			}
			_ = stop1
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func itoa(i int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(i)) }

func fmtInt(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestSlotMissingAndCheckpointTopicDeleted(t *testing.T) {
	e := newEnv(t, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE PUBLICATION p FOR TABLE a`)
	stop, _ := e.start(e.config())
	consume(t, e.b.Addrs(), "bulwark.cdc.checkpoints", 2) // initial and snapshot-done
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The stopped relay's walsender may take a moment to release the slot.
	for i := 0; ; i++ {
		_, err := e.conn.Exec(context.Background(), `SELECT pg_drop_replication_slot('s')`)
		if err == nil {
			break
		}
		if i == 100 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, done := e.start(e.config())
	if err := <-done; !errors.Is(err, relay.ErrSlotMissing) {
		t.Fatalf("Run = %v, want ErrSlotMissing", err)
	}
	// Recovery: resnapshot, then the relay runs again.
	ctx := context.Background()
	if err := relay.Resnapshot(ctx, e.config()); err != nil {
		t.Fatal(err)
	}
	stop, _ = e.start(e.config())
	waitSlot(t, e.conn, "s")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	cl, _ := kgo.NewClient(kgo.SeedBrokers(e.b.Addrs()...))
	defer cl.Close()
	if _, err := kadm.NewClient(cl).DeleteTopics(ctx, "bulwark.cdc.checkpoints"); err != nil {
		t.Fatal(err)
	}
	_, done = e.start(e.config())
	if err := <-done; !errors.Is(err, relay.ErrCheckpointTopicMissing) {
		t.Fatalf("Run = %v, want ErrCheckpointTopicMissing", err)
	}
	if err := relay.Drop(ctx, e.config(), false); err != nil {
		t.Fatal(err)
	}
}

func waitSlot(t *testing.T, conn *pgx.Conn, slot string) {
	for range 400 {
		var ok bool
		if err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active)`, slot).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("slot never active")
}

// TestRelationChangeMidStream adds and drops columns while streaming: the
// events follow the new shape and nothing is lost.
func TestRelationChangeMidStream(t *testing.T) {
	e := newEnv(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`, `CREATE PUBLICATION p FOR TABLE a`)
	stop, _ := e.start(e.config())
	defer func() { _ = stop() }() // how the relay ended is asserted where it matters
	waitSlot(t, e.conn, "s")
	exec(t, e.conn, `INSERT INTO a VALUES (1, 'x')`, `ALTER TABLE a ADD COLUMN w int DEFAULT 5`,
		`INSERT INTO a VALUES (2, 'y', 6)`, `ALTER TABLE a DROP COLUMN v`, `UPDATE a SET w = 7 WHERE id = 1`)
	evs := consume(t, e.b.Addrs(), "bulwark.cdc.public.a", 3)
	want := []string{`{"id":1,"v":"x"}`, `{"id":2,"v":"y","w":6}`, `{"id":1,"w":7}`}
	for i, ev := range evs {
		if string(ev.After) != want[i] {
			t.Errorf("event %d after = %s, want %s", i, ev.After, want[i])
		}
	}
}

// TestSnapshotResume interrupts the relay during the snapshot, repeatedly,
// while rows change, and checks that every key ends with exactly one
// snapshot read followed by exactly its later changes (no gap, no overlap).
func TestSnapshotResume(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	e := newEnv(t, `CREATE TABLE a (id int PRIMARY KEY, ver int NOT NULL)`,
		`INSERT INTO a SELECT g, 1 FROM generate_series(1, 3000) g`,
		`CREATE TABLE b (k text PRIMARY KEY, ver int NOT NULL)`,
		`INSERT INTO b SELECT 'k' || g, 1 FROM generate_series(1, 1500) g`,
		`CREATE PUBLICATION p FOR TABLE a, b`)
	cfg := e.config()
	cfg.SnapshotChunkRows = 50
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	ctx := context.Background()
	stopWriter := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		wconn, err := pgx.Connect(ctx, e.url)
		if err != nil {
			writerDone <- err
			return
		}
		defer wconn.Close(ctx)
		wr := rand.New(rand.NewPCG(seed, 3))
		for {
			select {
			case <-stopWriter:
				writerDone <- nil
				return
			default:
			}
			id := 1 + wr.IntN(3000)
			if _, err := wconn.Exec(ctx, `UPDATE a SET ver = ver + 1 WHERE id = $1`, id); err != nil {
				writerDone <- err
				return
			}
			if _, err := wconn.Exec(ctx, `UPDATE b SET ver = ver + 1 WHERE k = $1`, "k"+fmtInt(1+wr.IntN(1500))); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	for range 4 {
		stop, _ := e.start(cfg)
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	stop, _ := e.start(cfg)
	defer func() { _ = stop() }() // how the relay ended is asserted where it matters
	t.Logf("snapshot resumed %d times under a new snapshot", strings.Count(logs.String(), "snapshot resumed"))
	close(stopWriter)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	// The end marker must come from the stream, after the snapshot: a
	// resumed snapshot may read rows later than changes still queued in the
	// stream.
	for {
		st, err := relay.ReadStatus(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if st.Checkpoint != nil && st.Checkpoint.Snapshot != nil && st.Checkpoint.Snapshot.Done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	exec(t, e.conn, `UPDATE a SET ver = ver + 1 WHERE id = 3000`) // end marker on a
	var final int
	if err := e.conn.QueryRow(ctx, `SELECT ver FROM a WHERE id = 3000`).Scan(&final); err != nil {
		t.Fatal(err)
	}
	// Wait for the marker, then read both topics to their stable end:
	// everything committed before the marker is then visible.
	waitFor(t, e.b.Addrs(), "bulwark.cdc.public.a", func(ev relay.Event) bool {
		return ev.Op == relay.OpUpdate && string(ev.After) == `{"id":3000,"ver":`+fmtInt(final)+`}`
	})
	// Every key: one r, then versions ver+1, ver+2, … with no gap or repeat,
	// ending at the table's current version.
	for _, tb := range []struct {
		topic, sql string
		n          int
	}{{"bulwark.cdc.public.a", `SELECT id::text, ver FROM a`, 3000}, {"bulwark.cdc.public.b", `SELECT k, ver FROM b`, 1500}} {
		finalVer := map[string]int{}
		rows, err := e.conn.Query(ctx, tb.sql)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			var v int
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			finalVer[k] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		evs := readToEnd(t, e.b.Addrs(), tb.topic)
		last := map[string]int{}
		reads := 0
		for _, ev := range evs {
			var row map[string]any
			_ = jsonUnmarshal(ev.After, &row)
			k := keyOf(row)
			v := int(row["ver"].(float64))
			if ev.Op == "r" {
				reads++
				if _, dup := last[k]; dup {
					t.Fatalf("%s key %s: snapshot read after other events (seed %d)", tb.topic, k, seed)
				}
			} else if last[k]+1 != v {
				t.Fatalf("%s key %s: version %d after %d (seed %d)", tb.topic, k, v, last[k], seed)
			}
			last[k] = v
		}
		if reads != tb.n {
			t.Fatalf("%s: %d snapshot reads, want %d (seed %d)", tb.topic, reads, tb.n, seed)
		}
		for k, v := range finalVer {
			if last[k] != v {
				hw, _ := kadm.NewClient(mustClient(t, e.b.Addrs())).ListEndOffsets(ctx, tb.topic)
				lso, _ := kadm.NewClient(mustClient(t, e.b.Addrs())).ListCommittedOffsets(ctx, tb.topic)
				h, _ := hw.Lookup(tb.topic, 0)
				l, _ := lso.Lookup(tb.topic, 0)
				t.Logf("read %d events; high watermark %d, last stable %d; reading again: %d events", len(evs), h.Offset, l.Offset, len(readToEnd(t, e.b.Addrs(), tb.topic)))
				t.Fatalf("%s key %s: last event version %d, table has %d (seed %d)", tb.topic, k, last[k], v, seed)
			}
		}
	}
}

func waitFor(t *testing.T, brokers []string, topic string, pred func(relay.Event) bool) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("waiting on %s: timed out", topic)
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) {
			var ev relay.Event
			if jsonUnmarshal(r.Value, &ev) == nil && pred(ev) {
				found = true
			}
		})
		if found {
			return
		}
	}
}

// readToEnd reads topic partition 0 to its last stable offset.
func readToEnd(t *testing.T, brokers []string, topic string) []relay.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.KeepControlRecords(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	var out []relay.Event
	for next := int64(0); next < end.Offset; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: at %d of %d", topic, next, end.Offset)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			var ev relay.Event
			if err := jsonUnmarshal(r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
		})
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHeartbeatAdvancesSlot: with the captured tables quiet and other
// tables busy, heartbeats move the slot's confirmed position forward.
func TestHeartbeatAdvancesSlot(t *testing.T) {
	e := newEnv(t, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE TABLE other (id int)`, `CREATE PUBLICATION p FOR TABLE a`)
	stop, _ := e.start(e.config())
	defer func() { _ = stop() }() // how the relay ended is asserted where it matters
	waitSlot(t, e.conn, "s")
	exec(t, e.conn, `INSERT INTO other SELECT generate_series(1, 10000)`)
	var target string
	if err := e.conn.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	for range 200 {
		var passed bool
		if err := e.conn.QueryRow(context.Background(),
			`SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 's'`, target).Scan(&passed); err != nil {
			t.Fatal(err)
		}
		if passed {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("slot did not advance past %s while the captured table was quiet", target)
}

func mustClient(t *testing.T, brokers []string) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestLostReplicationConnection terminates the walsender mid-stream: the
// relay reconnects with backoff and every change arrives exactly once.
func TestLostReplicationConnection(t *testing.T) {
	e := newEnv(t, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE PUBLICATION p FOR TABLE a`)
	stop, _ := e.start(e.config())
	defer func() { _ = stop() }() // how the relay ended is asserted where it matters
	waitSlot(t, e.conn, "s")
	for i := range 6 {
		exec(t, e.conn, `INSERT INTO a SELECT g FROM generate_series(`+fmtInt(i*100+1)+`, `+fmtInt(i*100+100)+`) g`)
		if i%2 == 0 {
			exec(t, e.conn, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 's' AND active`)
		}
	}
	exec(t, e.conn, `INSERT INTO a VALUES (100000)`)
	waitFor(t, e.b.Addrs(), "bulwark.cdc.public.a", func(ev relay.Event) bool { return string(ev.After) == `{"id":100000}` })
	evs := readToEnd(t, e.b.Addrs(), "bulwark.cdc.public.a")
	seen := map[string]bool{}
	for _, ev := range evs {
		if seen[string(ev.After)] {
			t.Fatalf("duplicate %s", ev.After)
		}
		seen[string(ev.After)] = true
	}
	if len(seen) != 601 {
		t.Fatalf("%d distinct events, want 601", len(seen))
	}
}

// TestPublicationDropped: the walsender's "publication does not exist"
// (SQLSTATE 42704) stops the relay with the typed ErrPublicationMissing,
// found through the catalog rather than the message text.
func TestPublicationDropped(t *testing.T) {
	e := newEnv(t, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE PUBLICATION p FOR TABLE a`)
	stop, done := e.start(e.config())
	consume(t, e.b.Addrs(), "bulwark.cdc.checkpoints", 2) // initial and snapshot-done
	exec(t, e.conn, `DROP PUBLICATION p`, `INSERT INTO a VALUES (1)`)
	select {
	case err := <-done:
		if !errors.Is(err, relay.ErrPublicationMissing) {
			t.Fatalf("relay ended with %v, want ErrPublicationMissing", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("relay still running 60 s after its publication was dropped (stop: %v)", stop())
	}
}

// TestStatusBoundedWhenBrokerSilent: `bulwark cdc status` must answer when
// the broker does not: ReadStatus returns by its deadline with what
// PostgreSQL knows and the checkpoint error.
func TestStatusBoundedWhenBrokerSilent(t *testing.T) {
	e := newEnv(t, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE PUBLICATION p FOR TABLE a`)
	cfg := e.config()
	l, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg.Brokers = []string{l.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	began := time.Now()
	st, err := relay.ReadStatus(ctx, cfg)
	if err == nil || st.CheckpointError == "" {
		t.Fatalf("ReadStatus with a silent broker: %v, checkpoint error %q", err, st.CheckpointError)
	}
	// Deadline 3 s, plus at most one dial attempt (3 s) already under way.
	if took := time.Since(began); took > 8*time.Second {
		t.Fatalf("ReadStatus took %v with a 3 s deadline", took)
	}
	if st.CurrentLSN == "" || st.Slot != "s" {
		t.Fatalf("status lost what PostgreSQL said: %+v", st)
	}
}

// TestMultiPartitionKeepsPerKeyOrder: on a 4-partition topic every event of
// a key lands in one partition, the one Kafka's default (murmur2) key
// partitioner picks, so other producers agree, and in commit order, and a
// truncate reaches every partition.
func TestMultiPartitionKeepsPerKeyOrder(t *testing.T) {
	e := newEnv(t, `CREATE TABLE m (id int PRIMARY KEY, ver int NOT NULL)`, `CREATE PUBLICATION p FOR TABLE m`)
	cfg := e.config()
	cfg.TopicPartitions = 4
	stop, _ := e.start(cfg)
	defer func() { _ = stop() }() // how the relay ended does not matter here
	waitSlot(t, e.conn, "s")
	const keys, versions = 40, 5
	exec(t, e.conn, `INSERT INTO m SELECT g, 0 FROM generate_series(1, 40) g`)
	for v := 1; v < versions; v++ {
		exec(t, e.conn, `UPDATE m SET ver = ver + 1`)
	}
	exec(t, e.conn, `TRUNCATE m`)
	topic := "bulwark.cdc.public.m"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.b.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	hash := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	partOf := map[string]int32{}
	lastVer := map[string]int{}
	truncates := map[int32]bool{}
	seen := 0
	for seen < keys*versions || len(truncates) < 4 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d changes and truncates on %d partitions", seen, keys*versions, len(truncates))
		}
		fs.EachRecord(func(r *kgo.Record) {
			var ev relay.Event
			if err := jsonUnmarshal(r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Op == "t" {
				truncates[r.Partition] = true
				return
			}
			seen++
			k := string(r.Key)
			if p, ok := partOf[k]; ok && p != r.Partition {
				t.Fatalf("key %s in partitions %d and %d", k, p, r.Partition)
			}
			partOf[k] = r.Partition
			if want := int32(hash.Partition(&kgo.Record{Key: r.Key}, 4)); r.Partition != want {
				t.Fatalf("key %s in partition %d, Kafka's default partitioner says %d", k, r.Partition, want)
			}
			var row map[string]any
			if err := jsonUnmarshal(ev.After, &row); err != nil {
				t.Fatal(err)
			}
			v := int(row["ver"].(float64))
			if prev, ok := lastVer[k]; ok && v != prev+1 {
				t.Fatalf("key %s: version %d after %d", k, v, prev)
			}
			lastVer[k] = v
		})
	}
	used := map[int32]bool{}
	for _, p := range partOf {
		used[p] = true
	}
	if len(partOf) != keys || len(used) < 2 {
		t.Fatalf("%d keys over %d partitions: the test needs them spread", len(partOf), len(used))
	}
}
