package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/cdc/relay"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func exec(t *testing.T, conn *pgx.Conn, sqls ...string) {
	t.Helper()
	for _, s := range sqls {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// consume reads topic with read_committed until n events arrived.
func consume(t *testing.T, brokers []string, topic string, n int) []relay.Event {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []relay.Event
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d events of %s", len(out), n, topic)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e relay.Event
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatalf("bad event: %v", err)
			}
			out = append(out, e)
		})
	}
	return out
}

func TestSnapshotThenStream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dbURL := pgtest.NewEmptyDB(t)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec(t, conn,
		`CREATE TABLE items (id bigint PRIMARY KEY, name text, n int)`,
		`INSERT INTO items SELECT g, 'item' || g, g FROM generate_series(1, 250) g`,
		`CREATE PUBLICATION p FOR TABLE items`)
	b, err := broker.StartEmbedded(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := relay.New(relay.Config{PostgresURL: dbURL, Brokers: b.Addrs(), Slot: "s1", Publication: "p",
		SnapshotChunkRows: 100, HeartbeatInterval: 200 * time.Millisecond, SpillDir: t.TempDir(),
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	consume(t, b.Addrs(), "bulwark.cdc.public.items", 250)
	exec(t, conn,
		`UPDATE items SET n = -1 WHERE id = 1`,
		`DELETE FROM items WHERE id = 2`,
		`INSERT INTO items VALUES (1000, 'new', 0)`,
	)
	evs := consume(t, b.Addrs(), "bulwark.cdc.public.items", 253)
	ops := map[string]int{}
	ids := map[string]bool{}
	for _, e := range evs {
		ops[e.Op]++
		if ids[e.ID] {
			t.Errorf("duplicate id %s", e.ID)
		}
		ids[e.ID] = true
	}
	if ops["r"] != 250 || ops["u"] != 1 || ops["d"] != 1 || ops["c"] != 1 {
		t.Fatalf("ops %v", ops)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Op != "c" || last.Source.Table != "items" || last.Source.CommitLSN == "" || last.ID == "" {
		t.Fatalf("last event %+v", last)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func keyOf(row map[string]any) string {
	if id, ok := row["id"].(float64); ok {
		return fmt.Sprint(int(id))
	}
	return fmt.Sprint(row["k"])
}
