package client

import (
	"context"
	"sync"
	"time"
)

// queueFactor sizes the batcher's queue: maxItems × 4 waiting transfers
// (8,190 × 4 × 8 B of pointers ≈ 256 KiB) keep the gatherer busy while
// batches are on the wire. A full queue blocks Transfer until there is
// room or its ctx ends.
const queueFactor = 4

// batcher coalesces concurrent Transfer calls into batch requests.
//
// One goroutine (run) takes calls from the queue and gathers a batch: it
// starts with the first call and closes the batch after linger, at
// maxItems calls, or when a call's idempotency key is in the batch already
// (the server refuses a batch with duplicate keys; the call opens the next
// batch instead). Each closed batch is sent by its own goroutine, at most
// inFlight at once (sem); while all are on the wire, run waits, and calls
// queue up. Every call gets its own result: its transaction or its item
// error, or the batch's error (transport, 503 after the retries) when the
// whole request failed. A retried batch carries the same body, so the same
// keys, and commits each transaction at most once.
//
// Lock order: mu (read-held by submit while it enqueues) before nothing.
// Close takes mu for writing, so no call is mid-enqueue once stop is
// closed, and none enqueues after: run drains the queue and exits.
type batcher struct {
	c        *Client
	maxItems int
	linger   time.Duration
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
	done <-chan struct{} // the caller's ctx.Done()
	res  chan Result     // buffered 1: delivering never blocks
}

func newBatcher(c *Client, maxItems int, linger time.Duration, inFlight int) *batcher {
	b := &batcher{
		c: c, maxItems: maxItems, linger: linger,
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
	cl := &call{tx: tx, done: ctx.Done(), res: make(chan Result, 1)}
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

// gather collects a batch starting with first until linger passes,
// maxItems are in, or a call repeats a key of the batch (returned as
// carry, the first call of the next batch).
func (b *batcher) gather(first *call, timer *time.Timer) (batch []*call, carry *call) {
	batch = []*call{first}
	keys := map[string]struct{}{first.tx.IdempotencyKey: {}}
	timer.Reset(b.linger)
	defer timer.Stop()
	for len(batch) < b.maxItems {
		select {
		case cl := <-b.queue:
			if _, dup := keys[cl.tx.IdempotencyKey]; dup {
				return batch, cl
			}
			keys[cl.tx.IdempotencyKey] = struct{}{}
			batch = append(batch, cl)
		case <-timer.C:
			return batch, nil
		case <-b.stop:
			return batch, nil
		}
	}
	return batch, nil
}

// drain sends what is queued once stop is closed (nothing enqueues any
// more) and waits for every batch on the wire.
func (b *batcher) drain() {
	for {
		select {
		case cl := <-b.queue:
			batch, carry := b.gatherNow(cl)
			b.dispatch(batch)
			if carry != nil {
				b.dispatch([]*call{carry})
			}
		default:
			return
		}
	}
}

// gatherNow is gather without waiting: what is queued, up to maxItems.
func (b *batcher) gatherNow(first *call) (batch []*call, carry *call) {
	batch = []*call{first}
	keys := map[string]struct{}{first.tx.IdempotencyKey: {}}
	for len(batch) < b.maxItems {
		select {
		case cl := <-b.queue:
			if _, dup := keys[cl.tx.IdempotencyKey]; dup {
				return batch, cl
			}
			keys[cl.tx.IdempotencyKey] = struct{}{}
			batch = append(batch, cl)
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// dispatch sends batch on its own goroutine once a slot is free. Calls
// whose caller has given up are left out (they get nothing: nobody
// listens).
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
		return
	}
	b.sem <- struct{}{}
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
		cl.res <- res[i]
	}
}
