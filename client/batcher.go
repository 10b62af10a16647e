package client

import (
	"context"
	"errors"
	"sync"
	"time"
)

// maxBatchBytes bounds the estimated JSON of one automatic batch below
// the server's 8 MiB body limit: 8,190 plain transfers take ~1.5 MiB, but
// transfers with 4 KiB of metadata each would pass 8 MiB at ~2,000.
const maxBatchBytes = 7 << 20

// queueFactor sizes the batcher's queue: maxItems × 4 waiting transfers
// (8,190 × 4 × 8 B of pointers ≈ 256 KiB) keep the gatherer busy while
// batches are on the wire. A full queue blocks Transfer until there is
// room or its ctx ends.
const queueFactor = 4

// batcher coalesces concurrent Transfer calls into batch requests.
//
// One goroutine (run) takes calls from the queue and gathers a batch: it
// starts with the first call and closes the batch once linger has passed
// and a slot to send it is free, at maxItems calls, or when a call's
// idempotency key is in the batch already (the server refuses a batch with
// duplicate keys) or the call would take the batch's estimated JSON past
// maxBytes (the server's body limit); such a call opens the next batch
// instead. Each closed batch is sent by its own goroutine, at most
// inFlight at once (sem); while all are on the wire, the batch being
// gathered stays open (see gather) and calls join it. Every call gets its
// own result: its transaction or its item error, or the batch's error
// (transport, 503 after the retries) when the whole request failed. A
// retried batch carries the same body, so the same keys, and commits each
// transaction at most once.
//
// Lock order: mu (read-held by submit while it enqueues) before nothing.
// Close takes mu for writing, so no call is mid-enqueue once stop is
// closed, and none enqueues after: run drains the queue and exits.
type batcher struct {
	c        *Client
	maxItems int
	linger   time.Duration
	maxBytes int // estimated JSON bytes of a batch (maxBatchBytes)
	queue    chan *call
	sem      chan struct{} // one token per batch on the wire
	stop     chan struct{} // closed by close
	wg       sync.WaitGroup

	mu     sync.RWMutex
	closed bool
}

// call is one Transfer waiting for its result.
type call struct {
	tx   *Tx
	size int             // estimated JSON bytes of tx
	done <-chan struct{} // the caller's ctx.Done()
	res  chan Result     // buffered 1: delivering never blocks
}

func newBatcher(c *Client, maxItems int, linger time.Duration, inFlight int) *batcher {
	b := &batcher{
		c: c, maxItems: maxItems, linger: linger, maxBytes: maxBatchBytes,
		queue: make(chan *call, maxItems*queueFactor),
		sem:   make(chan struct{}, inFlight),
		stop:  make(chan struct{}),
	}
	b.wg.Add(1)
	go b.run()
	return b
}

// submit queues tx (valid, keyed) and waits for its result. When ctx ends
// first, it returns ctx's error; the transaction may still commit if its
// batch was sent.
func (b *batcher) submit(ctx context.Context, tx *Tx) (*Transaction, error) {
	cl := &call{tx: tx, size: estimateSize(tx), done: ctx.Done(), res: make(chan Result, 1)}
	if err := b.enqueue(ctx, cl); err != nil {
		return nil, err
	}
	select {
	case r := <-cl.res:
		return r.Transaction, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *batcher) enqueue(ctx context.Context, cl *call) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	select {
	case b.queue <- cl:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *batcher) run() {
	defer b.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var carry *call
	for {
		first := carry
		if first == nil {
			select {
			case first = <-b.queue:
			case <-b.stop:
				b.drain()
				return
			}
		}
		var batch []*call
		batch, carry = b.gather(first, timer)
		b.dispatch(batch)
	}
}

// gather collects a batch starting with first and returns it holding a
// slot of sem (dispatch sends it in that slot). The batch closes once
// linger has passed and a slot is free. When every slot is on the wire at
// that point, the batch stays open (as group commit does) until a slot
// frees, then gathers for linger once more: the callers whose batch just
// came back call again within that time and join, so a client whose
// batches all wait on the same rows (a hot account) sends one large batch
// per round trip rather than alternating small ones that commit one after
// the other. It closes earlier at maxItems, or when a call repeats a key
// of the batch or would pass maxBytes (returned as carry, the first call
// of the next batch).
func (b *batcher) gather(first *call, timer *time.Timer) (batch []*call, carry *call) {
	g := b.newGathering(first)
	timer.Reset(b.linger)
	defer timer.Stop()
	var wait chan struct{} // b.sem while waiting for a slot, else nil (never ready)
	held := false          // a slot is held (acquired after a wait)
	hold := func() {
		if !held {
			b.sem <- struct{}{}
		}
	}
	for len(g.batch) < b.maxItems {
		select {
		case cl := <-b.queue:
			if !g.add(cl) {
				hold()
				return g.batch, cl
			}
		case <-timer.C:
			if held {
				return g.batch, nil
			}
			select {
			case b.sem <- struct{}{}:
				return g.batch, nil
			default:
				wait = b.sem
			}
		case wait <- struct{}{}:
			held, wait = true, nil
			timer.Reset(b.linger)
		case <-b.stop:
			hold()
			return g.batch, nil
		}
	}
	hold()
	return g.batch, nil
}

// gathering is a batch being gathered.
type gathering struct {
	batch    []*call
	keys     map[string]struct{}
	bytes    int
	maxBytes int
}

func (b *batcher) newGathering(first *call) *gathering {
	return &gathering{batch: []*call{first}, keys: map[string]struct{}{first.tx.IdempotencyKey: {}},
		bytes: first.size, maxBytes: b.maxBytes}
}

// add adds cl unless its key is in the batch already or it would take the
// batch past maxBytes; then cl must open the next batch.
func (g *gathering) add(cl *call) bool {
	if _, dup := g.keys[cl.tx.IdempotencyKey]; dup || g.bytes+cl.size > g.maxBytes {
		return false
	}
	g.keys[cl.tx.IdempotencyKey] = struct{}{}
	g.bytes += cl.size
	g.batch = append(g.batch, cl)
	return true
}

// estimateSize is an upper estimate of tx's JSON: its strings plus the
// member names and punctuation (~100 B per posting, ~150 B per
// transaction).
func estimateSize(tx *Tx) int {
	n := 150 + len(tx.IdempotencyKey) + len(tx.Metadata) + len(tx.PendingID) + len(tx.Amount) + len(tx.Group)
	for _, p := range tx.Postings {
		n += 100 + len(p.Source) + len(p.Destination) + len(p.Amount) + len(p.Asset)
	}
	return n
}

// drain sends what is queued once stop is closed (nothing enqueues any
// more) and waits for every batch on the wire.
func (b *batcher) drain() {
	for {
		select {
		case cl := <-b.queue:
			batch, carry := b.gatherNow(cl)
			b.sem <- struct{}{}
			b.dispatch(batch)
			if carry != nil {
				b.sem <- struct{}{}
				b.dispatch([]*call{carry})
			}
		default:
			return
		}
	}
}

// gatherNow is gather without waiting: what is queued, up to maxItems.
func (b *batcher) gatherNow(first *call) (batch []*call, carry *call) {
	g := b.newGathering(first)
	for len(g.batch) < b.maxItems {
		select {
		case cl := <-b.queue:
			if !g.add(cl) {
				return g.batch, cl
			}
		default:
			return g.batch, nil
		}
	}
	return g.batch, nil
}

// dispatch sends batch on its own goroutine, in the slot of sem the
// caller holds. Calls whose caller has given up are left out (they get
// nothing: nobody listens).
func (b *batcher) dispatch(batch []*call) {
	live := batch[:0]
	for _, cl := range batch {
		select {
		case <-cl.done:
		default:
			live = append(live, cl)
		}
	}
	if len(live) == 0 {
		<-b.sem
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() { <-b.sem }()
		b.send(live)
	}()
}

// send posts one batch and hands each call its result. The request is not
// bound to any caller's ctx (one caller giving up must not fail the
// others); the client's timeout and retry bounds limit it.
func (b *batcher) send(batch []*call) {
	txs := make([]Tx, len(batch))
	for i, cl := range batch {
		txs[i] = *cl.tx
	}
	res, err := b.c.postBatch(context.Background(), txs)
	for i, cl := range batch {
		if err != nil {
			cl.res <- Result{Err: err}
			continue
		}
		cl.res <- alone(res[i])
	}
}

// alone makes an item's error look as if its transaction had been sent
// alone: Index 0 (as POST /v1/transactions answers), not its place in a
// batch the caller never saw.
func alone(r Result) Result {
	var e *Error
	if errors.As(r.Err, &e) && e.Index > 0 {
		c := *e
		c.Index = 0
		r.Err = &c
	}
	return r
}
