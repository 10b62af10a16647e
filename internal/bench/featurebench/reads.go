package featurebench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the read phase.
const (
	// maxInflight bounds the requests in flight of each open-model stream;
	// a request due while it is full is counted as dropped, not delayed.
	maxInflight = 256
	// maxSamples bounds the latencies kept per stream (1 minute at 10,000/s).
	maxSamples = 600_000
	// probePoll is how often a freshness probe reads its entity: the
	// resolution of the freshness figure.
	probePoll = 25 * time.Millisecond
	// probeTimeout: a probe not visible by then counts as this long.
	probeTimeout = 30 * time.Second
	// maxIngestBatch is the events of one paced POST /v1/events.
	maxIngestBatch = 100
)

// stream is the outcome of one open-model request stream.
type stream struct {
	mu      sync.Mutex
	lat     []time.Duration // guarded by mu
	errors  atomic.Int64
	dropped atomic.Int64
	first   atomic.Value // string: a sample failure
}

func (s *stream) record(d time.Duration) {
	s.mu.Lock()
	if len(s.lat) < maxSamples {
		s.lat = append(s.lat, d)
	}
	s.mu.Unlock()
}

func (s *stream) fail(err error) {
	s.errors.Add(1)
	s.first.CompareAndSwap(nil, err.Error())
}

// quantile of the recorded latencies in milliseconds (0 without any).
func (s *stream) quantile(q float64) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lat) == 0 {
		return 0
	}
	sorted := slices.Clone(s.lat)
	slices.Sort(sorted)
	i := min(len(sorted)-1, int(q*float64(len(sorted))))
	return float64(sorted[i]) / float64(time.Millisecond)
}

func (s *stream) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lat)
}

// openLoop calls fn at perSec for d, each call due at a fixed time
// whatever the previous ones did (open model), and records each one's
// latency from the time it was due (so a late start counts: no
// coordinated omission), unless fn returns its own figure (own > 0). It
// returns when every call ended.
func openLoop(ctx context.Context, perSec float64, d time.Duration, s *stream, fn func(ctx context.Context, i int) (own time.Duration, err error)) {
	sem := make(chan struct{}, maxInflight)
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Duration(float64(time.Second) / perSec)
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(due)):
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			s.dropped.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			own, err := fn(ctx, i)
			switch {
			case err != nil:
				s.fail(err)
			case own > 0:
				s.record(own)
			default:
				s.record(time.Since(due))
			}
		}()
	}
	wg.Wait()
}

// readPhase is the outcome of the read phase.
type readPhase struct {
	reads, evals, ingest, fresh, floor stream
	ingestRate                         float64 // events/s offered
	accepted                           atomic.Int64
	maxRSS                             float64
	// first and last scrape of the server in the phase: how the live
	// path batched while reads ran (scraped by runReads' sampler only).
	first, last serverStats
	scrapes     int
}

// wantStatus turns an unexpected answer into an error.
func wantStatus(st int, body []byte, err error, want int) error {
	if err != nil {
		return err
	}
	if st != want {
		return fmt.Errorf("HTTP %d: %.200s", st, body)
	}
	return nil
}

type wireEvent struct {
	ID     string         `json:"id"`
	Time   string         `json:"time"`
	Fields map[string]any `json:"fields"`
}

func (p payment) wire(t time.Time) wireEvent {
	return wireEvent{ID: p.id, Time: t.UTC().Format(time.RFC3339Nano),
		Fields: map[string]any{entityField: p.cardID(), "amount": p.amount, "device": p.deviceID()}}
}

// ingestSender returns how the read phase sends a batch of events:
// produced to the events topic (cfg.ReadIngest topic, when ingest runs)
// or through POST /v1/events.
func ingestSender(cfg *Config, c *child, brokers []string, ingest bool) (send func(context.Context, []payment) error, closeFn func(), err error) {
	if ingest && cfg.ReadIngest == ReadIngestTopic {
		pr, err := newPacedProducer(brokers)
		if err != nil {
			return nil, nil, err
		}
		return pr.send, pr.Close, nil
	}
	return func(ctx context.Context, ps []payment) error {
		evs := make([]wireEvent, len(ps))
		now := time.Now()
		for i, p := range ps {
			evs[i] = p.wire(now)
		}
		st, body, err := c.do(ctx, http.MethodPost, "/v1/events", c.key, map[string]any{"events": evs})
		return wantStatus(st, body, err, http.StatusAccepted)
	}, func() {}, nil
}

// runReads runs, for d and at once: events at ingestRate (produced to
// the events topic, or through POST /v1/events: cfg.ReadIngest), GET reads
// and evaluate calls at cfg.ReadRate each, and freshness probes at
// cfg.ProbeRate; with ingestRate 0, reads and evaluate calls only (the
// idle read path).
func runReads(ctx context.Context, cfg *Config, c *child, brokers []string, ingestRate float64, d time.Duration) (*readPhase, error) {
	ph := &readPhase{ingestRate: ingestRate}
	var wg sync.WaitGroup
	run := func(f func()) { wg.Go(f) }
	// Paced ingest: batches of up to maxIngestBatch events, about ten
	// batches per second at least.
	batch := max(1, min(maxIngestBatch, int(ingestRate/10)))
	ingestGen := newGenerator(cfg, 3, "r")
	var genMu sync.Mutex
	send, closeSend, err := ingestSender(cfg, c, brokers, ingestRate > 0)
	if err != nil {
		return nil, err
	}
	defer closeSend()
	run(func() {
		if ingestRate <= 0 {
			return
		}
		openLoop(ctx, ingestRate/float64(batch), d, &ph.ingest, func(ctx context.Context, _ int) (time.Duration, error) {
			genMu.Lock()
			ps := make([]payment, batch)
			for i := range ps {
				ps[i] = ingestGen.payment()
			}
			genMu.Unlock()
			if err := send(ctx, ps); err != nil {
				return 0, err
			}
			ph.accepted.Add(int64(batch))
			return 0, nil
		})
	})
	readGen := newGenerator(cfg, 4, "")
	var readMu sync.Mutex
	run(func() {
		openLoop(ctx, cfg.ReadRate, d, &ph.reads, func(ctx context.Context, _ int) (time.Duration, error) {
			readMu.Lock()
			card := readGen.card()
			readMu.Unlock()
			st, body, err := c.do(ctx, http.MethodGet, "/v1/features/"+entityField+"/"+cardID(card), c.key, nil)
			return 0, wantStatus(st, body, err, http.StatusOK)
		})
	})
	// The floor: GET /healthz (no key, no database) at the same rate, what
	// HTTP and this machine's scheduling cost alone.
	run(func() {
		openLoop(ctx, cfg.ReadRate, d, &ph.floor, func(ctx context.Context, _ int) (time.Duration, error) {
			st, body, err := c.do(ctx, http.MethodGet, "/healthz", "", nil)
			return 0, wantStatus(st, body, err, http.StatusOK)
		})
	})
	evalGen := newGenerator(cfg, 5, "x")
	var evalMu sync.Mutex
	run(func() {
		openLoop(ctx, cfg.ReadRate, d, &ph.evals, func(ctx context.Context, _ int) (time.Duration, error) {
			evalMu.Lock()
			ev := evalGen.payment().wire(time.Now())
			evalMu.Unlock()
			st, body, err := c.do(ctx, http.MethodPost, "/v1/features/evaluate", c.key, map[string]any{"event": ev, "record": false})
			return 0, wantStatus(st, body, err, http.StatusOK)
		})
	})
	run(func() {
		if ingestRate <= 0 {
			return
		}
		openLoop(ctx, cfg.ProbeRate, d, &ph.fresh, func(ctx context.Context, i int) (time.Duration, error) {
			return probe(ctx, c, i)
		})
	})
	run(func() { ph.sample(ctx, c, d) })
	wg.Wait()
	return ph, nil
}

// probe sends one event of a new entity and reads that entity until the
// event is visible; it records the time from the 202 to the first read
// that shows it (a probe never seen counts as probeTimeout).
func probe(ctx context.Context, c *child, i int) (time.Duration, error) {
	id := "probe" + strconv.Itoa(i)
	ev := payment{id: id, card: -1 - i, amount: 1, device: 0}
	// A probe shed by admission (503) is sent again: freshness counts from
	// the 202, and a read shed while polling is not an answer either.
	var accepted time.Time
	for accepted.IsZero() {
		st, body, err := c.do(ctx, http.MethodPost, "/v1/events", c.key, ev.wire(time.Now()))
		switch {
		case err == nil && st == http.StatusServiceUnavailable:
			if err := pause1(ctx, probePoll); err != nil {
				return 0, err
			}
		case err != nil || st != http.StatusAccepted:
			return 0, wantStatus(st, body, err, http.StatusAccepted)
		default:
			accepted = time.Now()
		}
	}
	path := "/v1/features/" + entityField + "/" + ev.cardID()
	for time.Since(accepted) < probeTimeout {
		st, body, err := c.do(ctx, http.MethodGet, path, c.key, nil)
		if err == nil && st == http.StatusOK {
			var v struct {
				Newest *time.Time `json:"newest_event_time"`
			}
			if err := json.Unmarshal(body, &v); err != nil {
				return 0, err
			}
			if v.Newest != nil {
				return max(time.Since(accepted), time.Nanosecond), nil
			}
		} else if err != nil || st != http.StatusServiceUnavailable {
			return 0, wantStatus(st, body, err, http.StatusOK)
		}
		if err := pause1(ctx, probePoll); err != nil {
			return 0, err
		}
	}
	return probeTimeout, nil
}

// pause1 sleeps d unless ctx ends first.
func pause1(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// sample scrapes the server every second for d: the highest RSS, and the
// first and last figures of the phase.
func (ph *readPhase) sample(ctx context.Context, c *child, d time.Duration) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	end := time.After(d)
	for {
		if m, err := c.scrape(ctx); err == nil {
			ph.maxRSS = max(ph.maxRSS, m.rss)
			if ph.scrapes == 0 {
				ph.first = m
			}
			ph.last = m
			ph.scrapes++
		}
		select {
		case <-ctx.Done():
			return
		case <-end:
			return
		case <-t.C:
		}
	}
}
