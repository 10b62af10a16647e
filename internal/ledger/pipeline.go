package ledger

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// PipelineConfig tunes the commit pipeline.
type PipelineConfig struct {
	// MaxBatchTransactions bounds the transactions of one database
	// transaction. Zero means 8,190 (see MaxBatchTransactions).
	MaxBatchTransactions int
	// BatchWindow is how long the committer waits for more requests once it
	// has one, when the batch is not yet full. Zero means 500µs; negative
	// means do not wait (batch only what is already queued).
	BatchWindow time.Duration
	// MaxQueuedTransactions bounds the transactions waiting for a commit;
	// past it Submit fails fast with ErrOverloaded. Zero means 65,536
	// (8 full batches; at ~1 KiB each, ~64 MiB of queued requests at most).
	MaxQueuedTransactions int
	// Committers is the number of batches in flight at once. Zero means 2:
	// one commits while the next locks and computes; more only adds lock
	// waits on hot accounts.
	Committers int
	// Naive disables batching: every transfer is applied in its own
	// database transaction as soon as it arrives, by the caller's goroutine,
	// with every statement (BEGIN, key lookup, SELECT … FOR UPDATE, inserts,
	// update, COMMIT) its own round trip: the textbook per-request design.
	// It is the baseline of `bulwark bench ledger`, not a production mode.
	Naive bool
	// TracerProvider traces batches (see trace.go). Nil means no tracing,
	// and no tracing work on the hot path.
	TracerProvider trace.TracerProvider
}

func (c *PipelineConfig) ensureDefaults() {
	if c.MaxBatchTransactions <= 0 {
		c.MaxBatchTransactions = MaxBatchTransactions
	}
	if c.BatchWindow == 0 {
		c.BatchWindow = 500 * time.Microsecond
	}
	if c.MaxQueuedTransactions <= 0 {
		c.MaxQueuedTransactions = 65536
	}
	if c.Committers <= 0 {
		c.Committers = 2
	}
}

// queueSlots bounds the request channel in requests; MaxQueuedTransactions
// bounds it in transactions. Whichever is reached first, Submit returns
// ErrOverloaded (see "Queue bound" in doc.go).
const queueSlots = 4096

// Pipeline gathers concurrent requests into batches, each applied in one
// PostgreSQL transaction (see applyBatch), and answers each request. Its
// design (bounds, lock order, round trips, retries) is in doc.go.
type Pipeline struct {
	pool    *pgxpool.Pool
	cfg     PipelineConfig
	log     *slog.Logger
	metrics *pipelineMetrics
	tracer  trace.Tracer  // nil: tracing off
	batches atomic.Uint64 // batch ids of traced batches

	queue  chan *request
	queued atomic.Int64 // transactions submitted and not yet answered

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	wg     sync.WaitGroup
}

// NewPipeline starts a pipeline; Close stops it after draining.
func NewPipeline(pool *pgxpool.Pool, cfg PipelineConfig, log *slog.Logger, reg prometheus.Registerer) *Pipeline {
	cfg.ensureDefaults()
	p := &Pipeline{pool: pool, cfg: cfg, log: log, metrics: newPipelineMetrics(reg),
		queue: make(chan *request, queueSlots)}
	if cfg.TracerProvider != nil {
		p.tracer = cfg.TracerProvider.Tracer(traceScope)
	}
	if !cfg.Naive {
		for range cfg.Committers {
			p.wg.Add(1)
			go p.commitLoop()
		}
	}
	return p
}

// Submit applies b for tenant and returns one result per transaction, in
// b's order. b is validated by construction (see Batch); only the zero
// Batch is refused here, with a *Error. Submit fails fast with
// ErrOverloaded when MaxQueuedTransactions would be exceeded, and with
// ErrClosed after Close. If ctx ends while the request is queued or
// committing, the request may still commit: callers retry with the same
// batch (the same idempotency keys) to learn the outcome.
func (p *Pipeline) Submit(ctx context.Context, tenant string, b Batch) ([]Result, error) {
	if b.Len() == 0 {
		return nil, reject(CodeInvalid, "a batch needs at least one transaction")
	}
	r := newRequest(tenant, b)
	if p.tracer != nil {
		r.span = trace.SpanFromContext(ctx)
	}
	n := int64(len(r.items))
	if q := p.queued.Add(n); q > int64(p.cfg.MaxQueuedTransactions) {
		p.queued.Add(-n)
		p.metrics.rejected.Inc()
		return nil, ErrOverloaded
	}
	defer p.queued.Add(-n)
	p.metrics.queued.Set(float64(p.queued.Load()))
	if p.cfg.Naive {
		return p.applyNow(ctx, r)
	}
	if err := p.enqueue(r); err != nil {
		return nil, err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, r.err
	}
	return results(r), nil
}

// newRequest gives each transaction of b its id: a UUIDv7 taken at
// submission, so ids sort by arrival.
func newRequest(tenant string, b Batch) *request {
	r := &request{tenant: tenant, journalID: b.journalID, items: make([]item, len(b.txs)), done: make(chan struct{})}
	for i := range b.txs {
		r.items[i] = item{in: &b.txs[i], digest: b.digests[i], id: NewID(), postings: b.postings[i]}
	}
	return r
}

// enqueue hands r to a committer without blocking: a full channel is
// ErrOverloaded, a closed pipeline ErrClosed.
func (p *Pipeline) enqueue(r *request) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	select {
	case p.queue <- r:
		return nil
	default:
		p.metrics.rejected.Inc()
		return ErrOverloaded
	}
}

func (p *Pipeline) applyNow(ctx context.Context, r *request) ([]Result, error) {
	start := time.Now()
	// One database transaction per transfer (unless a group needs them
	// together), each statement its own round trip: the textbook design.
	for _, part := range splitForNaive(r) {
		if err := applyBatch(ctx, p.pool, []*request{part}, true, nil); err != nil {
			return nil, err
		}
	}
	p.metrics.observe(1, len(r.items), time.Since(start))
	return results(r), nil
}

// splitForNaive splits r into single-transaction requests sharing r's
// items, unless r has groups (which must commit in one transaction).
func splitForNaive(r *request) []*request {
	for i := range r.items {
		if r.items[i].in.Group != "" || r.journalID != "" {
			return []*request{r}
		}
	}
	parts := make([]*request, len(r.items))
	for i := range r.items {
		parts[i] = &request{tenant: r.tenant, items: r.items[i : i+1]}
	}
	return parts
}

func results(r *request) []Result {
	out := make([]Result, len(r.items))
	for i := range r.items {
		out[i] = r.items[i].res
	}
	return out
}

// commitLoop is one committer: take a request, gather more until the batch
// is full or the window closes, apply, answer, repeat. It exits when the
// queue is closed and drained.
func (p *Pipeline) commitLoop() {
	defer p.wg.Done()
	var carry *request
	for {
		first := carry
		if first == nil {
			var ok bool
			if first, ok = <-p.queue; !ok {
				return
			}
		}
		batch, n := []*request{first}, len(first.items)
		batch, carry = p.gather(batch, n)
		p.commit(batch)
	}
}

// gather adds queued requests to batch until it is full or the window ends.
// A request that does not fit is returned as carry for the next batch.
func (p *Pipeline) gather(batch []*request, n int) ([]*request, *request) {
	var timer <-chan time.Time
	if p.cfg.BatchWindow > 0 {
		t := time.NewTimer(p.cfg.BatchWindow)
		defer t.Stop()
		timer = t.C
	}
	for n < p.cfg.MaxBatchTransactions {
		var r *request
		var ok bool
		select {
		case r, ok = <-p.queue:
		default:
			if timer == nil {
				return batch, nil
			}
			select {
			case r, ok = <-p.queue:
			case <-timer:
				return batch, nil
			}
		}
		if !ok {
			return batch, nil
		}
		if n+len(r.items) > p.cfg.MaxBatchTransactions {
			return batch, r
		}
		batch, n = append(batch, r), n+len(r.items)
	}
	return batch, nil
}

// commitTimeout bounds one batch including retries; past it the requests
// fail with a retryable error rather than hang.
const commitTimeout = 30 * time.Second

func (p *Pipeline) commit(batch []*request) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	var bt *batchTrace
	if p.tracer != nil {
		ctx, bt = p.startBatchTrace(ctx, batch)
	}
	p.applyIsolating(ctx, batch, bt.timing())
	cancel()
	bt.end(batch) // before the requests are answered: their spans are still open
	committed, n := 0, 0
	var firstErr error
	for _, r := range batch {
		if r.err == nil {
			committed, n = committed+1, n+len(r.items)
		} else if firstErr == nil {
			firstErr = r.err
		}
		close(r.done)
	}
	if firstErr != nil {
		p.metrics.failed.Inc()
		p.log.Error("commit batch", "requests", len(batch), "failed_requests", len(batch)-committed, "err", firstErr)
	}
	if committed > 0 {
		p.metrics.observe(committed, n, time.Since(start))
	}
}

// applyIsolating applies batch and sets each request's err. When the batch
// fails for a reason tied to the data of one of its requests (dataError:
// a value PostgreSQL refuses), it is split in halves and each half applied
// on its own, recursively, so the request at fault fails alone (with
// CodeUnstorable) and its neighbours, maybe other tenants', commit. Input
// validation refuses everything known to be unstorable before it gets
// here; this is defence in depth. A bad request costs its batch about
// 2·log2(requests) extra database transactions, all under the batch's
// commitTimeout.
func (p *Pipeline) applyIsolating(ctx context.Context, batch []*request, timing *batchTiming) {
	err := applyBatch(ctx, p.pool, batch, false, timing)
	if err == nil || !dataError(err) {
		for _, r := range batch {
			r.err = err
		}
		return
	}
	if len(batch) == 1 {
		p.metrics.isolated.Inc()
		p.log.Warn("request refused by the database; isolated from its batch", "tenant", batch[0].tenant, "err", err)
		batch[0].err = reject(CodeUnstorable, "the database refused a value of this request (%s); nothing was written",
			pgCode(err))
		return
	}
	mid := len(batch) / 2
	p.applyIsolating(ctx, batch[:mid], timing)
	p.applyIsolating(ctx, batch[mid:], timing)
}

// Close stops accepting requests, commits everything queued, and waits.
func (p *Pipeline) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.queue)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// NewID returns a random, time-ordered UUID (version 7): ids sort by
// creation time, which keeps the transactions primary key append-mostly.
func NewID() string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		panic(fmt.Sprintf("ledger: crypto/rand: %v", err))
	}
	ms := uint64(time.Now().UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms<<16)
	copy(u[:6], ts[:6])
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}
