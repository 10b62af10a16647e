package server

import (
	"context"
	"sync"

	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
)

// lazyBroker opens the Kafka brokers of a process on first use: the
// relay, the feature workers and the events API share one embedded
// broker, and a process that never needs Kafka (api and workers on their
// own) never starts one.
type lazyBroker struct {
	mu      sync.Mutex
	addrs   []string // guarded by mu
	closeFn func()   // guarded by mu
}

func (b *lazyBroker) open(ctx context.Context, cfg Config) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.addrs != nil {
		return b.addrs, nil
	}
	addrs, closeFn, err := OpenBroker(ctx, cfg.KafkaBrokers, cfg.DataDir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	b.addrs, b.closeFn = addrs, closeFn
	return addrs, nil
}

func (b *lazyBroker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closeFn != nil {
		b.closeFn()
		b.closeFn, b.addrs = nil, nil
	}
}

// addBroker adds the broker as the first component after the control
// plane, so that it is closed after everything that uses it.
func (p *process) addBroker() {
	p.add(component{name: "kafka broker", run: waitDone, close: p.kafka.close})
}

// limiter returns the process's one background-task limiter (features
// tasks and huge exports), its buckets following the live
// tasks.<task>.rate_per_partition settings and its metrics registered once.
func (p *process) limiter() *ratelimit.Limiter {
	if p.rl == nil {
		p.rl = ratelimit.New(ratelimit.FromControl(p.watcher), ratelimit.WithRegisterer(p.reg))
	}
	return p.rl
}

// features returns the process's features engine, built once for the
// roles that need it (features, api).
func (p *process) features() (*features.Engine, error) {
	if p.feat != nil {
		return p.feat, nil
	}
	cfg := p.cfg.Features
	cfg.Logger, cfg.Registerer = p.log, p.reg
	if len(cfg.Brokers) == 0 {
		cfg.BrokersFn = func(ctx context.Context) ([]string, error) { return p.kafka.open(ctx, p.cfg) }
	}
	e, err := features.New(p.pool, p.watcher, p.limiter(), cfg)
	if err != nil {
		return nil, err
	}
	p.feat = e
	p.add(component{name: "features engine", run: waitDone, close: e.Close})
	return e, nil
}

// addFeatures adds the feature workers (the live consumer group) and the
// background tasks (backfill, recompute, velocity detail, retention).
func (p *process) addFeatures() error {
	e, err := p.features()
	if err != nil {
		return err
	}
	p.add(component{name: "features worker", run: e.RunWorker})
	p.add(component{name: "features tasks", run: e.RunTasks})
	return nil
}
