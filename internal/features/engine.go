package features

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
)

// Engine is the features engine of one process: the definition store, the
// live workers (RunWorker), the background tasks (RunTasks) and the HTTP
// API (API). Its parts are independent: a process may run the API
// without workers and the reverse.
type Engine struct {
	cfg   Config
	pool  *pgxpool.Pool
	lim   limits
	rl    *ratelimit.Limiter
	m     *metrics
	store *Store
	cache versionCache // worker: live versions per tenant by generation
	tiles *tileCache   // worker: tile rows it wrote last (nil: TileCacheBytes < 0)
	reads readCache    // API: served versions per tenant, 1 s old at most

	brokerMu sync.Mutex // guards cfg.Brokers while BrokersFn resolves it

	detailLagAt time.Time            // RunTasks only: last count of paused detail partitions
	ratesSet    map[taskRateKey]bool // RunTasks only: series of the task rate gauge

	prodOnce sync.Once
	prod     *kgo.Client
	prodErr  error
}

// New returns the engine. settings supplies the live per-tenant settings
// (a *control.Watcher); rl throttles the background tasks.
func New(pool *pgxpool.Pool, settings limits, rl *ratelimit.Limiter, cfg Config) (*Engine, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, pool: pool, lim: settings, rl: rl, m: newMetrics(cfg.Registerer), store: NewStore(pool, settings)}
	e.store.now = cfg.Now
	if cfg.TileCacheBytes > 0 {
		e.tiles = newTileCache(cfg.TileCacheBytes)
	}
	return e, nil
}

// Store returns the definition store.
func (e *Engine) Store() *Store { return e.store }

// Close releases the producer.
func (e *Engine) Close() {
	if e.prod != nil {
		e.prod.Close()
	}
}

// producer returns the Kafka producer of events and detail records:
// idempotent (franz-go's default) with acks from all in-sync replicas, so
// an acknowledged event is durable and a retried produce is not
// duplicated in the log (duplicates by id are removed on apply anyway).
func (e *Engine) producer(ctx context.Context) (*kgo.Client, error) {
	e.prodOnce.Do(func() {
		var brokers []string
		if brokers, e.prodErr = e.brokers(ctx); e.prodErr != nil {
			return
		}
		e.prod, e.prodErr = kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(100_000))
		if e.prodErr == nil {
			e.prodErr = e.EnsureTopics(ctx)
		}
	})
	return e.prod, e.prodErr
}

// brokers returns the seed brokers, resolving Config.BrokersFn once.
func (e *Engine) brokers(ctx context.Context) ([]string, error) {
	e.brokerMu.Lock()
	defer e.brokerMu.Unlock()
	if len(e.cfg.Brokers) > 0 {
		return e.cfg.Brokers, nil
	}
	if e.cfg.BrokersFn == nil {
		return nil, errors.New("features: no Kafka brokers configured")
	}
	b, err := e.cfg.BrokersFn(ctx)
	if err != nil {
		return nil, err
	}
	e.cfg.Brokers = b
	return b, nil
}

// EnsureTopics creates the events and detail topics if they are missing.
func (e *Engine) EnsureTopics(ctx context.Context) error {
	brokers, err := e.brokers(ctx)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, t := range []string{e.cfg.EventsTopic, e.cfg.DetailTopic} {
		resp, err := adm.CreateTopic(ctx, e.cfg.EventsPartitions, -1, nil, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	return nil
}

// AddPartitions raises the partition count of the events topic by n,
// online: producers pick the new partitions up with their next metadata
// refresh and the consumer group rebalances onto them (docs/features.md).
func AddPartitions(ctx context.Context, brokers []string, topic string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreatePartitions(ctx, n, topic)
	if err != nil {
		return err
	}
	for _, r := range resp {
		if r.Err != nil {
			return fmt.Errorf("add partitions to %s: %w", topic, r.Err)
		}
	}
	return nil
}
