// Package cdcbench measures the change stream on this machine: events per
// second relayed into the embedded broker and visible to a read_committed
// consumer, against the raw speed of the replication stream decoded alone
// (the local upper bound), and end-to-end latency (commit to visible) at
// half of the measured maximum throughput. It is a program, not a test:
// it reports ratios and never fails because the machine is slow.
package cdcbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/cdc/pgoutput"
	"github.com/bulwark-ledger/bulwark/internal/cdc/relay"
	"github.com/bulwark-ledger/bulwark/internal/cdc/repl"
)

// Config configures a run.
type Config struct {
	// PostgresURL is an empty database the benchmark may fill. Required.
	PostgresURL string
	// Rows inserted for the throughput phase. Default 100,000.
	Rows int
	// Dir holds the embedded broker's data. Required.
	Dir string
	// Seed of the transaction sizes. Default 1.
	Seed uint64
	// LatencySeconds bounds the paced latency phase. Default 5.
	LatencySeconds float64
	Log            *slog.Logger
}

// Result is one mode's figures.
type Result struct {
	Mode         string  `json:"mode"` // relay | decode_only
	EventsPerSec float64 `json:"events_per_sec"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	// LatencyRate is the paced insert rate (rows/s) of the latency phase.
	LatencyRate float64 `json:"latency_rate_rows_per_sec"`
	Events      int     `json:"events"`
}

// Report is the JSON written by `bulwark bench cdc --json`.
type Report struct {
	Rows    int      `json:"rows"`
	Results []Result `json:"results"`
	// RelayOverDecode is relay events/s over decode-only events/s (target ≥ 0.5).
	RelayOverDecode float64 `json:"relay_over_decode_only"`
}

const (
	table = "bench_rows"
	pub   = "bench_pub"
	topic = "bench.public.bench_rows"
)

func (cfg *Config) ensureDefaults() {
	if cfg.Rows == 0 {
		cfg.Rows = 100_000
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.LatencySeconds == 0 {
		cfg.LatencySeconds = 5
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
}

// Run runs both modes and prints a table to out.
func Run(ctx context.Context, cfg Config, out io.Writer) (Report, error) {
	cfg.ensureDefaults()
	rep := Report{Rows: cfg.Rows}
	conn, err := pgx.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		return rep, err
	}
	defer conn.Close(context.Background())
	for _, s := range []string{
		`CREATE TABLE ` + table + ` (id bigint PRIMARY KEY, txn int NOT NULL, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE PUBLICATION ` + pub + ` FOR TABLE ` + table,
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return rep, err
		}
	}
	b, err := broker.StartEmbedded(ctx, cfg.Dir)
	if err != nil {
		return rep, err
	}
	defer b.Close()
	rcfg := relay.Config{PostgresURL: cfg.PostgresURL, Brokers: b.Addrs(), Slot: "bench", Publication: pub,
		TopicPrefix: "bench.", CheckpointTopic: "bench.checkpoints", SpillDir: cfg.Dir + "/spill", Logger: cfg.Log,
		HeartbeatInterval: time.Second}
	// The slots exist before the rows: both modes then read the same backlog.
	stopRelay, err := startRelay(ctx, rcfg)
	if err != nil {
		return rep, err
	}
	if err := waitSlot(ctx, conn, "bench"); err != nil {
		return rep, err
	}
	stopRelay()
	dc, err := repl.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		return rep, err
	}
	// Two decode-only slots: one pass before the relay's and one after, so
	// that neither mode alone gets the warm page cache; the faster pass is
	// the bound.
	for _, slot := range []string{"bench_decode", "bench_decode2"} {
		if _, err := dc.CreateSlot(ctx, slot, false); err != nil {
			return rep, err
		}
		defer func() { _, _ = conn.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, slot) }() // best effort
	}
	dc.Close(context.Background())

	w := &writer{conn: conn, r: rand.New(rand.NewPCG(cfg.Seed, 7))}
	if err := w.insert(ctx, cfg.Rows, 0); err != nil {
		return rep, err
	}
	decode, err := decodeOnly(ctx, cfg.PostgresURL, "bench_decode", cfg.Rows)
	if err != nil {
		return rep, err
	}
	relayed, err := relayThroughput(ctx, rcfg, cfg.Rows)
	if err != nil {
		return rep, err
	}
	decode2, err := decodeOnly(ctx, cfg.PostgresURL, "bench_decode2", cfg.Rows)
	if err != nil {
		return rep, err
	}
	if decode2.EventsPerSec > decode.EventsPerSec {
		decode = decode2
	}
	rate := relayed.EventsPerSec / 2
	latRows := min(cfg.Rows, int(rate*cfg.LatencySeconds))
	if err := latencies(ctx, cfg, rcfg, w, &relayed, &decode, rate, latRows); err != nil {
		return rep, err
	}
	rep.Results = []Result{relayed, decode}
	rep.RelayOverDecode = relayed.EventsPerSec / decode.EventsPerSec
	fmt.Fprintf(out, "%-12s %14s %10s %10s\n", "mode", "events/s", "p50 ms", "p99 ms")
	for _, r := range rep.Results {
		fmt.Fprintf(out, "%-12s %14.0f %10.1f %10.1f\n", r.Mode, r.EventsPerSec, r.P50Ms, r.P99Ms)
	}
	fmt.Fprintf(out, "relay / decode_only = %.2f (target ≥ 0.50); latency measured at %.0f rows/s (half the relay maximum), target p99 < 500 ms\n",
		rep.RelayOverDecode, rate)
	return rep, nil
}

// WriteJSON writes the report to path.
func (r Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func startRelay(ctx context.Context, cfg relay.Config) (stop func(), err error) {
	r, err := relay.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			cfg.Logger.Error("bench relay", "err", err)
		}
	}, nil
}

func waitSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	for range 600 {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active)`, slot).Scan(&ok); err != nil {
			return err
		}
		if ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("slot %s never became active", slot)
}

// writer inserts rows of about 200 bytes in transactions of 1 to 1,000.
type writer struct {
	conn *pgx.Conn
	r    *rand.Rand
	next int
	txn  int
}

// insert writes n rows; rate > 0 paces them at rate rows per second.
func (w *writer) insert(ctx context.Context, n int, rate float64) error {
	start := time.Now()
	for done := 0; done < n; {
		k := min(1+w.r.IntN(1000), n-done)
		if rate > 0 {
			k = min(1+w.r.IntN(100), n-done) // keep bursts short against the pace
		}
		w.txn++
		_, err := w.conn.Exec(ctx, `INSERT INTO `+table+` (id, txn, payload)
			SELECT g, $3, repeat(md5(g::text), 5) FROM generate_series($1::bigint, $2::bigint) g`, w.next+1, w.next+k, w.txn)
		if err != nil {
			return err
		}
		w.next += k
		done += k
		if rate > 0 {
			if d := time.Duration(float64(done)/rate*float64(time.Second)) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
		}
	}
	return nil
}

// decodeOnly streams the slot and decodes every message and row, producing
// nothing, until n inserts were seen.
func decodeOnly(ctx context.Context, url, slot string, n int) (Result, error) {
	res := Result{Mode: "decode_only"}
	start := time.Now()
	seen, _, err := stream(ctx, url, slot, n, nil)
	if err != nil {
		return res, err
	}
	res.Events = seen
	res.EventsPerSec = float64(seen) / time.Since(start).Seconds()
	return res, nil
}

// stream decodes slot until n inserts; lat, when set, receives each
// insert's commit-to-decoded latency.
func stream(ctx context.Context, url, slot string, n int, lat *[]float64) (int, pgoutput.LSN, error) {
	rc, err := repl.Connect(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close(context.Background())
	st, err := rc.StartReplication(ctx, slot, 0, repl.Options{Publications: []string{pub}, Streaming: true, Messages: true})
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	dec := pgoutput.NewDecoder()
	seen := 0
	var commitTime, confirmed time.Time
	var last pgoutput.LSN
	for seen < n {
		f, err := st.Recv(ctx)
		if err != nil {
			return seen, last, err
		}
		if f.Kind != 'w' {
			continue
		}
		m, err := dec.Decode(f.Data)
		if err != nil {
			return seen, last, err
		}
		switch m := m.(type) {
		case *pgoutput.Begin:
			commitTime = m.CommitTime
		case *pgoutput.StreamCommit:
			commitTime = m.CommitTime
		case *pgoutput.Commit:
			// Confirm at most every 100 ms, like the relay's batched Kafka
			// commits: each confirmation can make the server fsync the slot.
			last = m.EndLSN
			if time.Since(confirmed) >= 100*time.Millisecond {
				_ = st.SendStatus(last, last, false)
				confirmed = time.Now()
			}
		case *pgoutput.Insert:
			rel, _ := dec.Relation(m.RelationID)
			if _, err := dec.Row(rel, m.New); err != nil {
				return seen, last, err
			}
			seen++
			if lat != nil {
				*lat = append(*lat, float64(time.Since(commitTime).Microseconds())/1000)
			}
		}
	}
	if last != 0 {
		_ = st.SendStatus(last, last, false)
	}
	return seen, last, nil
}

// relayThroughput starts the relay on the backlog and measures until a
// read_committed consumer has seen every row.
func relayThroughput(ctx context.Context, rcfg relay.Config, n int) (Result, error) {
	res := Result{Mode: "relay"}
	cons, err := newConsumer(ctx, rcfg.Brokers)
	if err != nil {
		return res, err
	}
	defer cons.Close()
	start := time.Now()
	stop, err := startRelay(ctx, rcfg)
	if err != nil {
		return res, err
	}
	defer stop()
	seen, err := consume(ctx, cons, n, nil)
	if err != nil {
		return res, err
	}
	res.Events = seen
	res.EventsPerSec = float64(seen) / time.Since(start).Seconds()
	return res, nil
}

// newConsumer reads the bench topic from its current end: events produced
// from now on. The topic is created first if needed, so that "the end" is
// an offset fixed before the relay starts.
func newConsumer(ctx context.Context, brokers []string) (*kgo.Client, error) {
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	end, ok := ends.Lookup(topic, 0)
	if !ok || end.Err != nil {
		return nil, fmt.Errorf("end offset of %s: %w", topic, end.Err)
	}
	return kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(end.Offset)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(50*time.Millisecond))
}

// consume counts insert events until n; lat receives commit-to-visible
// latencies.
func consume(ctx context.Context, cl *kgo.Client, n int, lat *[]float64) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	seen := 0
	for seen < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return seen, fmt.Errorf("consumed %d of %d events: %w", seen, n, err)
		}
		now := time.Now()
		var bad error
		fs.EachRecord(func(r *kgo.Record) {
			if lat == nil {
				seen++
				return
			}
			var e struct {
				Op     string `json:"op"`
				Source struct {
					CommitTime time.Time `json:"commit_time"`
				} `json:"source"`
			}
			if err := json.Unmarshal(r.Value, &e); err != nil {
				bad = err
				return
			}
			if e.Op == relay.OpCreate {
				seen++
				*lat = append(*lat, float64(now.Sub(e.Source.CommitTime).Microseconds())/1000)
			}
		})
		if bad != nil {
			return seen, bad
		}
	}
	return seen, nil
}

// latencies paces inserts at rate rows/s, first with the relay running
// (commit to visible under read_committed), then with the decoder alone.
func latencies(ctx context.Context, cfg Config, rcfg relay.Config, w *writer, relayed, decode *Result, rate float64, rows int) error {
	cons, err := newConsumer(ctx, rcfg.Brokers)
	if err != nil {
		return err
	}
	defer cons.Close()
	stop, err := startRelay(ctx, rcfg)
	if err != nil {
		return err
	}
	var lat []float64
	errc := make(chan error, 1)
	go func() { _, err := consume(ctx, cons, rows, &lat); errc <- err }()
	time.Sleep(500 * time.Millisecond) // consumer joined and relay streaming
	if err := w.insert(ctx, rows, rate); err != nil {
		stop()
		return err
	}
	err = <-errc
	stop()
	if err != nil {
		return err
	}
	relayed.P50Ms, relayed.P99Ms, relayed.LatencyRate = pct(lat, 0.50), pct(lat, 0.99), rate

	// A fresh slot, so that the decoder sees only the paced rows.
	dc, err := repl.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		return err
	}
	if _, err := dc.CreateSlot(ctx, "bench_decode_lat", false); err != nil {
		return err
	}
	dc.Close(context.Background())
	defer func() {
		_, _ = w.conn.Exec(context.Background(), `SELECT pg_drop_replication_slot('bench_decode_lat')`)
	}() // best effort
	var dlat []float64
	go func() { _, _, err := stream(ctx, cfg.PostgresURL, "bench_decode_lat", rows, &dlat); errc <- err }()
	time.Sleep(500 * time.Millisecond)
	if err := w.insert(ctx, rows, rate); err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	decode.P50Ms, decode.P99Ms, decode.LatencyRate = pct(dlat, 0.50), pct(dlat, 0.99), rate
	return nil
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
