package featurebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/features"
)

// eventsPartitions is the partition count of the events topic, the
// engine's default.
const eventsPartitions = 8

// activeTimeout bounds the wait for the workload's features to be built.
const activeTimeout = time.Minute

// Run runs every phase, prints the table to out and returns the report.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	cfg.ensureDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	b, err := broker.StartEmbedded(ctx, filepath.Join(cfg.Dir, "kafka"))
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if err := createTopics(ctx, b.Addrs()); err != nil {
		return nil, err
	}
	log.Info("bench features: starting the server")
	c, err := startChild(ctx, &cfg, b.Addrs())
	if err != nil {
		return nil, err
	}
	rep, err := phases(ctx, &cfg, c, b.Addrs())
	if serr := c.stop(); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return nil, err
	}
	rep.print(out)
	return rep, nil
}

// createTopics creates the events topic (and the ledger's entries topic
// the workers also subscribe to) before the server starts, so that the
// backlog's partitions are fixed.
func createTopics(ctx context.Context, brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, t := range []string{features.DefaultEventsTopic, features.DefaultLedgerTopic} {
		resp, err := adm.CreateTopic(ctx, eventsPartitions, -1, nil, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	return nil
}

// ingestResult holds the ingest phases' figures.
type ingestResult struct {
	backlog           []payment
	entities          int
	eng, cons, nv     rate
	mem0, mem1        serverStats
	pgEngine, pgNaive float64 // PostgreSQL CPU seconds of the engine's ingest and of the naive run
	pgLocal           bool
	// Rows inserted or updated in feature_tiles by the engine's ingest,
	// and in the naive table by the naive run.
	tileRows, naiveRows int64
}

// idleReads bounds the reads measured without ingest.
const idleReads = 5 * time.Second

// tableWrites is the rows inserted and updated in table so far
// (pg_stat_user_tables; the statistics reach it within a second or so of
// each transaction's end).
func tableWrites(ctx context.Context, pool *pgxpool.Pool, table string) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0)::bigint FROM pg_stat_user_tables WHERE relname = $1`, table).Scan(&n)
	return n, err
}

func phases(ctx context.Context, cfg *Config, c *child, brokers []string) (*Report, error) {
	rep := &Report{Config: reportConfig(cfg)}
	rep.Notes = append(rep.Notes, "load average at start: "+loadavg())
	pool, err := pgxpool.New(ctx, cfg.PostgresURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := prepare(ctx, c); err != nil {
		return nil, err
	}
	if cfg.Parallelism > 0 {
		if err := c.call(ctx, http.MethodPatch, "/v1/admin/settings/tenants/*", c.adminKey, map[string]any{
			"set": map[string]string{"features.consumer_parallelism": strconv.Itoa(cfg.Parallelism)}, "reason": "bench features",
		}, nil); err != nil {
			return nil, err
		}
		time.Sleep(time.Second) // the workers see it (watcher poll 500 ms)
	}
	in, err := ingest(ctx, cfg, c, pool, brokers, rep)
	if err != nil {
		return nil, err
	}
	idleFor := min(idleReads, cfg.Duration)
	cfg.Log.Info("bench features: reads without ingest", "for", idleFor)
	idle, err := runReads(ctx, cfg, c, brokers, 0, idleFor)
	if err != nil {
		return nil, err
	}
	half := in.eng.perSec() / 2
	cfg.Log.Info("bench features: reads", "ingest_per_sec", half, "for", cfg.Duration)
	profErr := make(chan error, 1)
	if cfg.ServerProfile != "" {
		go func() { profErr <- c.profile(ctx, max(cfg.Duration-2*time.Second, time.Second), cfg.ServerProfile) }()
	} else {
		profErr <- nil
	}
	ph, err := runReads(ctx, cfg, c, brokers, half, cfg.Duration)
	if perr := <-profErr; perr != nil {
		rep.Notes = append(rep.Notes, "server profile: "+perr.Error())
	}
	if err != nil {
		return nil, err
	}
	ph.notes(rep)
	if in.naiveRows, err = tableWrites(ctx, pool, "bench_naive_features"); err != nil {
		return nil, err
	}
	if ph.fresh.count() == 0 || ph.reads.count() == 0 || ph.evals.count() == 0 {
		return nil, fmt.Errorf("the read phase measured nothing (%d reads, %d evaluations, %d probes); see the notes: %v",
			ph.reads.count(), ph.evals.count(), ph.fresh.count(), rep.Notes)
	}
	var history int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM feature_events WHERE tenant_id = $1`, benchTenant).Scan(&history); err != nil {
		return nil, err
	}
	cfg.Log.Info("bench features: pause", "history", history)
	pz, err := pause(ctx, c, pool, history)
	if err != nil {
		return nil, err
	}
	rep.Notes = append(rep.Notes, "load average at end: "+loadavg())
	var tileBytes float64
	if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size('feature_tiles')`).Scan(&tileBytes); err != nil {
		return nil, err
	}
	rep.rows(cfg, in, ph, pz, tileBytes)
	rep.readRows("http_idle", idle)
	return rep, nil
}

// prepare creates the tenant, defines the workload's features, waits
// until they are active and warms the read path.
func prepare(ctx context.Context, c *child) error {
	if err := c.setup(ctx); err != nil {
		return err
	}
	for _, d := range definitions() {
		if err := c.call(ctx, http.MethodPost, "/v1/features/definitions", c.key, d, nil); err != nil {
			return err
		}
	}
	if err := waitActive(ctx, c, len(definitions())); err != nil {
		return err
	}
	for i := range 20 {
		if err := c.call(ctx, http.MethodGet, "/v1/features/"+entityField+"/"+cardID(i), c.key, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// ingest measures the engine on the backlog (with the server's memory
// before and after, and a sampling profile of the database), then the
// consume-only bound and the naive baseline on the same events.
func ingest(ctx context.Context, cfg *Config, c *child, pool *pgxpool.Pool, brokers []string, rep *Report) (*ingestResult, error) {
	in := &ingestResult{}
	var err error
	if in.mem0, err = c.scrape(ctx); err != nil { // no entity tracked yet
		return nil, err
	}
	gen := newGenerator(cfg, 2, "e")
	in.backlog = make([]payment, cfg.Events)
	for i := range in.backlog {
		in.backlog[i] = gen.payment()
	}
	in.entities = len(gen.seen)
	pgRead, ok := pgCPU(ctx, pool)
	in.pgLocal = ok
	pgSecs := func() float64 {
		if ok {
			return pgRead()
		}
		return 0
	}
	pg0 := pgSecs()
	tiles0, err := tableWrites(ctx, pool, "feature_tiles")
	if err != nil {
		return nil, err
	}
	cfg.Log.Info("bench features: engine ingest", "events", cfg.Events, "entities", in.entities)
	var sampler pgSampler
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() { defer close(sampled); sampler.run(sctx, pool) }()
	profErr := make(chan error, 1)
	if cfg.ServerProfile != "" {
		// The ingest's length is not known in advance: profile its first
		// part (at ~10,000 events/s, most of it).
		d := time.Duration(float64(cfg.Events)/10_000*float64(time.Second)) * 3 / 4
		go func() { profErr <- c.profile(ctx, max(d, time.Second), cfg.ServerProfile+".ingest") }()
	} else {
		profErr <- nil
	}
	in.eng, err = engineIngest(ctx, pool, brokers, in.backlog)
	if perr := <-profErr; perr != nil {
		rep.Notes = append(rep.Notes, "server ingest profile: "+perr.Error())
	}
	stopSampling()
	<-sampled
	if err != nil {
		return nil, err
	}
	in.pgEngine = pgSecs() - pg0
	rep.EngineIngestDB = sampler.top()
	if in.mem1, err = c.scrape(ctx); err != nil {
		return nil, err
	}
	cfg.Log.Info("bench features: consume only")
	if in.cons, err = consumeOnly(ctx, brokers, cfg.Events); err != nil {
		return nil, err
	}
	cfg.Log.Info("bench features: naive baseline", "for", cfg.NaiveDuration)
	pg2 := pgSecs()
	if in.nv, err = naive(ctx, pool, in.backlog, cfg.NaiveClients, cfg.NaiveDuration); err != nil {
		return nil, err
	}
	in.pgNaive = pgSecs() - pg2
	// The naive run lasted seconds after the engine's last commit: the
	// engine's statistics have reached pg_stat_user_tables.
	tiles1, err := tableWrites(ctx, pool, "feature_tiles")
	if err != nil {
		return nil, err
	}
	in.tileRows = tiles1 - tiles0
	return in, nil
}

// notes records the read phase's failures and drops.
func (ph *readPhase) notes(rep *Report) {
	for _, x := range []struct {
		name string
		s    *stream
	}{{"ingest", &ph.ingest}, {"read", &ph.reads}, {"evaluate", &ph.evals}, {"probe", &ph.fresh}} {
		if f, ok := x.s.first.Load().(string); ok {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %d requests failed, e.g. %.160s", x.name, x.s.errors.Load(), f))
		}
		if d := x.s.dropped.Load(); d > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %d requests not sent (%d in flight already)", x.name, d, maxInflight))
		}
	}
}

// rows fills the report's results.
func (r *Report) rows(cfg *Config, in *ingestResult, ph *readPhase, pz pauseResult, tileBytes float64) {
	eng, nv, cons := in.eng, in.nv, in.cons
	r.add("ingest_events_per_sec", "engine", eng.perSec(), "events/s")
	r.add("ingest_events_per_sec", "naive", nv.perSec(), "events/s")
	r.add("ingest_events_per_sec", "consume_only", cons.perSec(), "events/s")
	r.add("ingest_engine_over_naive", "engine", eng.perSec()/nv.perSec(), "ratio")
	r.add("ingest_engine_over_consume_only", "engine", eng.perSec()/cons.perSec(), "ratio")
	perK := func(secs float64, n int64) float64 { return secs / float64(n) * 1000 }
	m0, m1 := in.mem0, in.mem1
	r.add("cpu_seconds_per_1k_events", "engine_server", perK(m1.cpu-m0.cpu, eng.n), "s")
	if in.pgLocal {
		r.add("cpu_seconds_per_1k_events", "engine_postgres", perK(in.pgEngine, eng.n), "s")
		r.add("cpu_seconds_per_1k_events", "naive_postgres", perK(in.pgNaive, nv.n), "s")
		// What this machine's cores allow at the engine's CPU per event,
		// with nothing else running (no load generator, no broker): the
		// ingest target is judged against it in the summary.
		if perEvent := (m1.cpu - m0.cpu + in.pgEngine) / float64(eng.n); perEvent > 0 {
			r.add("ingest_cpu_ceiling_events_per_sec", "engine", float64(runtime.NumCPU())/perEvent, "events/s")
		}
	}
	if b := m1.batches - m0.batches; b > 0 {
		r.add("engine_batch_records_avg", "engine", (m1.batchRecords-m0.batchRecords)/b, "records")
		r.add("engine_batch_ms_avg", "engine", (m1.batchSecs-m0.batchSecs)/b*1000, "ms")
		r.add("engine_transactions_in_flight_avg", "engine", (m1.batchSecs-m0.batchSecs)/eng.d.Seconds(), "transactions")
	}
	var tiles float64
	for i := range tileWritePaths {
		tiles += m1.tileWrites[i] - m0.tileWrites[i]
	}
	if tiles > 0 {
		// How the live path wrote its tile rows: from the tile cache without
		// a read, inserted, a stale cache entry redone, or read and locked.
		for i, p := range tileWritePaths {
			r.add("engine_tile_rows_share", p, (m1.tileWrites[i]-m0.tileWrites[i])/tiles, "ratio")
		}
	}
	r.add("db_rows_written_per_event", "engine", float64(in.tileRows)/float64(eng.n), "rows")
	r.add("db_rows_written_per_event", "naive", float64(in.naiveRows)/float64(nv.n), "rows")
	r.readRows("http", ph)
	r.add("events_post_p99_ms", "http", ph.ingest.quantile(0.99), "ms")
	r.add("read_phase_ingest_events_per_sec", "http", float64(ph.accepted.Load())/cfg.Duration.Seconds(), "events/s")
	if b := ph.last.batches - ph.first.batches; b > 0 && ph.scrapes > 1 {
		// The live path's transactions while reads ran: their size and
		// time bound freshness (an event waits for the transaction in
		// flight, then for its own).
		r.add("engine_batch_records_avg", "engine_read_phase", (ph.last.batchRecords-ph.first.batchRecords)/b, "records")
		r.add("engine_batch_ms_avg", "engine_read_phase", (ph.last.batchSecs-ph.first.batchSecs)/b*1000, "ms")
	}
	r.add("freshness_p50_ms", "engine", ph.fresh.quantile(0.50), "ms")
	r.add("freshness_p99_ms", "engine", ph.fresh.quantile(0.99), "ms")
	r.add("bytes_per_entity", "engine", max(m1.rss-m0.rss, 0)/float64(in.entities), "bytes")
	r.add("heap_bytes_per_entity", "engine", max(m1.heap-m0.heap, 0)/float64(in.entities), "bytes")
	r.add("rss_bytes", "engine", max(ph.maxRSS, m1.rss), "bytes")
	r.add("pg_tile_bytes_per_entity", "engine", tileBytes/float64(in.entities), "bytes")
	r.add("pause_effective_ms", "engine", float64(pz.effective)/float64(time.Millisecond), "ms")
	r.Entities, r.ReadPhaseIngestRate, r.ReadIngest = in.entities, ph.ingestRate, cfg.ReadIngest
	r.Counts = map[string]int64{
		"engine_events": eng.n, "naive_events": nv.n, "consume_only_records": cons.n,
		"reads": int64(ph.reads.count()), "evaluations": int64(ph.evals.count()), "probes": int64(ph.fresh.count()),
		"backfill_events_at_pause": pz.before, "backfill_events_after_pause": pz.after,
	}
	r.BackfillRate = pz.rate
}

// waitActive waits until the tenant has n active features (their
// backfill over an empty history done).
func waitActive(ctx context.Context, c *child, n int) error {
	deadline := time.Now().Add(activeTimeout)
	for {
		var list struct {
			Definitions []struct{ State string } `json:"definitions"`
		}
		if err := c.call(ctx, http.MethodGet, "/v1/features/definitions", c.key, nil, &list); err != nil {
			return err
		}
		active := 0
		for _, d := range list.Definitions {
			if d.State == "active" {
				active++
			}
		}
		if active == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d features active after %v", active, n, activeTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loadavg is the machine's load (/proc/loadavg's first three fields): the
// benchmark shares the machine, and its figures say so.
func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	return strings.Join(f[:min(3, len(f))], " ")
}

// failedRatio is the share of read and evaluate requests that failed
// (admission sheds with 503 when the server is overloaded).
func (ph *readPhase) failedRatio() float64 {
	failed := ph.reads.errors.Load() + ph.evals.errors.Load()
	total := failed + int64(ph.reads.count()+ph.evals.count())
	if total == 0 {
		return 0
	}
	return float64(failed) / float64(total)
}

// readRows adds the figures of a read phase in mode.
func (r *Report) readRows(mode string, ph *readPhase) {
	r.add("read_p50_ms", mode, ph.reads.quantile(0.50), "ms")
	r.add("read_p99_ms", mode, ph.reads.quantile(0.99), "ms")
	r.add("healthz_p99_ms", mode, ph.floor.quantile(0.99), "ms")
	r.add("evaluate_p50_ms", mode, ph.evals.quantile(0.50), "ms")
	r.add("evaluate_p99_ms", mode, ph.evals.quantile(0.99), "ms")
	r.add("failed_ratio", mode, ph.failedRatio(), "ratio")
}
