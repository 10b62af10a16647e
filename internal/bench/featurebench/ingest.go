package featurebench

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/bulwark-ledger/bulwark/internal/features"
)

// Bounds of the ingest phases.
const (
	// ingestTimeout bounds the engine's and the consumer's run over the backlog.
	ingestTimeout = 15 * time.Minute
	// positionPoll is how often the engine's committed positions are read.
	positionPoll = 20 * time.Millisecond
)

// rate is a measured throughput: n events over d, from the start of the
// work (the first produce; the consumer's creation, its group join
// included; the first naive transaction) to its last event.
type rate struct {
	n int64
	d time.Duration
}

func (r rate) perSec() float64 {
	if r.d <= 0 {
		return 0
	}
	return float64(r.n) / r.d.Seconds()
}

// produceBacklog appends the payments to the events topic directly with
// franz-go, in the record format of the engine's POST /v1/events (key
// "tenant/id", value the event's JSON, timestamp the acceptance), as fast
// as the broker takes them.
func produceBacklog(ctx context.Context, brokers []string, ps []payment) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(features.DefaultEventsTopic),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(50_000), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	var (
		mu    sync.Mutex
		first error
	)
	for _, p := range ps {
		now := time.Now()
		body, err := p.event(now).MarshalJSON()
		if err != nil {
			return err
		}
		cl.Produce(ctx, &kgo.Record{Key: []byte(benchTenant + "/" + p.id), Value: body, Timestamp: now}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return first
}

// pacedProducer produces events to the events topic in the record format
// of POST /v1/events, one call per paced batch, waiting for the broker's
// acknowledgement (as a 202 would).
type pacedProducer struct{ cl *kgo.Client }

func newPacedProducer(brokers []string) (*pacedProducer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(features.DefaultEventsTopic),
		kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	return &pacedProducer{cl: cl}, nil
}

func (p *pacedProducer) send(ctx context.Context, ps []payment) error {
	recs := make([]*kgo.Record, len(ps))
	now := time.Now()
	for i, x := range ps {
		body, err := x.event(now).MarshalJSON()
		if err != nil {
			return err
		}
		recs[i] = &kgo.Record{Key: []byte(benchTenant + "/" + x.id), Value: body, Timestamp: now}
	}
	return p.cl.ProduceSync(ctx, recs...).FirstErr()
}

func (p *pacedProducer) Close() { p.cl.Close() }

// committed is the sum of the engine's committed positions on the events
// topic (feature_offsets, advanced in the transaction of the tiles).
func committed(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0) FROM feature_offsets WHERE group_id = $1 AND topic = $2`,
		features.DefaultGroup, features.DefaultEventsTopic).Scan(&n)
	return n, err
}

// engineIngest produces the backlog and measures until the engine's
// committed positions cover it (from base, the positions before).
func engineIngest(ctx context.Context, pool *pgxpool.Pool, brokers []string, ps []payment) (rate, error) {
	base, err := committed(ctx, pool)
	if err != nil {
		return rate{}, err
	}
	target := base + int64(len(ps))
	ctx, cancel := context.WithTimeout(ctx, ingestTimeout)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return produceBacklog(gctx, brokers, ps) })
	var r rate
	start := time.Now()
	g.Go(func() error {
		for {
			n, err := committed(gctx, pool)
			if err != nil {
				return fmt.Errorf("engine positions: %w", err)
			}
			if n >= target {
				r = rate{n: int64(len(ps)), d: time.Since(start)}
				return nil
			}
			select {
			case <-gctx.Done():
				return fmt.Errorf("engine committed %d of %d events: %w", n-base, len(ps), gctx.Err())
			case <-time.After(positionPoll):
			}
		}
	})
	return r, g.Wait()
}

// consumeOnly reads n records of the events topic from the start with a
// new consumer group, doing nothing with them.
func consumeOnly(ctx context.Context, brokers []string, n int) (rate, error) {
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("bulwark-bench-consume-only"),
		kgo.ConsumeTopics(features.DefaultEventsTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DisableAutoCommit())
	if err != nil {
		return rate{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, ingestTimeout)
	defer cancel()
	var seen int64
	for seen < int64(n) {
		fs := cl.PollRecords(ctx, 5000)
		if err := ctx.Err(); err != nil {
			return rate{}, fmt.Errorf("consumed %d of %d records: %w", seen, n, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return rate{}, ferr
		}
		seen += int64(fs.NumRecords())
	}
	return rate{n: seen, d: time.Since(start)}, nil
}

// The naive baseline: what an implementation that updates its aggregates
// per event does. Each event is one transaction that upserts one row per
// feature per window (5 × 4 = 20 rows, keyed by entity, feature, window and
// the window's tumbling bucket), the 20 statements pipelined in one round
// trip. Writers own disjoint entities (by hash), as partitions would.
const naiveTable = `CREATE TABLE bench_naive_features (
	entity  text NOT NULL,
	feature text NOT NULL,
	win     text NOT NULL,
	bucket  bigint NOT NULL,
	n       bigint NOT NULL DEFAULT 0,
	total   numeric NOT NULL DEFAULT 0,
	lo      numeric,
	hi      numeric,
	devices text[] NOT NULL DEFAULT '{}',
	PRIMARY KEY (entity, feature, win, bucket))`

// naiveUpsert is the statement of each aggregation: $1 entity, $2 window,
// $3 bucket, $4 the amount or the device (none for count).
var naiveUpsert = map[string]string{
	"count": `INSERT INTO bench_naive_features AS t (entity, feature, win, bucket, n) VALUES ($1, 'count', $2, $3, 1)
		ON CONFLICT (entity, feature, win, bucket) DO UPDATE SET n = t.n + 1`,
	"sum": `INSERT INTO bench_naive_features AS t (entity, feature, win, bucket, total) VALUES ($1, 'sum', $2, $3, $4::numeric)
		ON CONFLICT (entity, feature, win, bucket) DO UPDATE SET total = t.total + excluded.total`,
	"min": `INSERT INTO bench_naive_features AS t (entity, feature, win, bucket, lo) VALUES ($1, 'min', $2, $3, $4::numeric)
		ON CONFLICT (entity, feature, win, bucket) DO UPDATE SET lo = least(t.lo, excluded.lo)`,
	"max": `INSERT INTO bench_naive_features AS t (entity, feature, win, bucket, hi) VALUES ($1, 'max', $2, $3, $4::numeric)
		ON CONFLICT (entity, feature, win, bucket) DO UPDATE SET hi = greatest(t.hi, excluded.hi)`,
	"distinct_count": `INSERT INTO bench_naive_features AS t (entity, feature, win, bucket, devices) VALUES ($1, 'distinct_count', $2, $3, ARRAY[$4::text])
		ON CONFLICT (entity, feature, win, bucket) DO UPDATE
		SET devices = CASE WHEN $4::text = ANY (t.devices) THEN t.devices ELSE t.devices || $4::text END`,
}

var naiveAggs = []string{"count", "sum", "min", "max", "distinct_count"}

var naiveWindows = []time.Duration{time.Minute, 10 * time.Minute, time.Hour, 24 * time.Hour}

// naive runs the baseline over ps for at most d with clients writers.
func naive(ctx context.Context, pool *pgxpool.Pool, ps []payment, clients int, d time.Duration) (rate, error) {
	if _, err := pool.Exec(ctx, naiveTable); err != nil {
		return rate{}, fmt.Errorf("naive table: %w", err)
	}
	shards := make([][]payment, clients)
	for _, p := range ps {
		h := fnv.New32a()
		h.Write([]byte(p.cardID()))
		i := h.Sum32() % uint32(clients)
		shards[i] = append(shards[i], p)
	}
	var done atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for _, shard := range shards {
		g.Go(func() error {
			for _, p := range shard {
				if err := naiveEvent(gctx, pool, p, time.Now()); err != nil {
					if gctx.Err() != nil {
						return nil // the measured window ended
					}
					return err
				}
				done.Add(1)
			}
			return nil
		})
	}
	err := g.Wait()
	elapsed := time.Since(start)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return rate{}, fmt.Errorf("naive: %w", err)
	}
	return rate{n: done.Load(), d: elapsed}, nil
}

// naiveEvent applies one event in its own transaction: 20 upserts.
func naiveEvent(ctx context.Context, pool *pgxpool.Pool, p payment, at time.Time) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, agg := range naiveAggs {
			for i, w := range naiveWindows {
				args := []any{p.cardID(), windows[i], at.Unix() / int64(w/time.Second)}
				switch agg {
				case "count":
				case "distinct_count":
					args = append(args, p.deviceID())
				default:
					args = append(args, p.amount)
				}
				b.Queue(naiveUpsert[agg], args...)
			}
		}
		return tx.SendBatch(ctx, &b).Close()
	})
}
