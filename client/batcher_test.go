package client

import (
	"strings"
	"testing"
	"time"
)

// TestGatherSplits: a batch closes before a repeated key and before the
// byte bound; the call that closed it opens the next batch.
func TestGatherSplits(t *testing.T) {
	b := &batcher{maxItems: 100, linger: time.Millisecond, maxBytes: 3000, queue: make(chan *call, 10), stop: make(chan struct{}), sem: make(chan struct{}, 1)}
	mk := func(key string, meta int) *call {
		tx := &Tx{IdempotencyKey: key, Postings: []Posting{{Source: "a", Destination: "b", Amount: "1", Asset: "EUR"}}}
		if meta > 0 {
			tx.Metadata = []byte(`{"m":"` + strings.Repeat("x", meta) + `"}`)
		}
		return &call{tx: tx, size: estimateSize(tx)}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for _, tc := range []struct {
		name  string
		calls []*call
		want  int // calls in the first batch
		carry string
	}{
		{"distinct keys", []*call{mk("a", 0), mk("b", 0), mk("c", 0)}, 3, ""},
		{"repeated key", []*call{mk("a", 0), mk("b", 0), mk("a", 0), mk("c", 0)}, 2, "a"},
		{"byte bound", []*call{mk("a", 1000), mk("b", 1000), mk("c", 1000)}, 2, "c"},
	} {
		for _, c := range tc.calls[1:] {
			b.queue <- c
		}
		batch, carry := b.gather(tc.calls[0], timer)
		if len(b.sem) != 1 {
			t.Fatalf("%s: gather returned holding %d slots, want 1", tc.name, len(b.sem))
		}
		<-b.sem
		if len(batch) != tc.want || (carry == nil) != (tc.carry == "") || (carry != nil && carry.tx.IdempotencyKey != tc.carry) {
			t.Errorf("%s: batch of %d, carry %v; want %d, carry %q", tc.name, len(batch), carry, tc.want, tc.carry)
		}
		for len(b.queue) > 0 {
			<-b.queue
		}
	}
	if n := estimateSize(mk("k", 0).tx); n < 150 || n > 400 {
		t.Errorf("plain transfer estimated at %d bytes", n)
	}
}

// TestGatherWaitsForASlot: while every slot is on the wire the batch
// stays open past linger and calls join it; once a slot frees, calls
// arriving within linger (the callers of the batch that came back) join
// too, and the batch returns holding the slot.
func TestGatherWaitsForASlot(t *testing.T) {
	const linger = 20 * time.Millisecond
	b := &batcher{maxItems: 100, linger: linger, maxBytes: maxBatchBytes, queue: make(chan *call, 10),
		stop: make(chan struct{}), sem: make(chan struct{}, 1)}
	mk := func(key string) *call {
		tx := &Tx{IdempotencyKey: key, Postings: []Posting{{Source: "a", Destination: "b", Amount: "1", Asset: "EUR"}}}
		return &call{tx: tx, size: estimateSize(tx)}
	}
	b.sem <- struct{}{} // the one slot: a batch on the wire
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	done := make(chan []*call, 1)
	go func() {
		batch, _ := b.gather(mk("a"), timer)
		done <- batch
	}()
	time.Sleep(3 * linger)
	b.queue <- mk("b")
	select {
	case batch := <-done:
		t.Fatalf("the batch closed with %d calls while no slot was free", len(batch))
	case <-time.After(3 * linger):
	}
	<-b.sem            // the batch on the wire came back
	b.queue <- mk("c") // and one of its callers calls again
	select {
	case batch := <-done:
		if len(batch) != 3 {
			t.Fatalf("batch of %d calls, want 3 (a, b joined while waiting, c within linger of the free slot)", len(batch))
		}
	case <-time.After(time.Second):
		t.Fatal("the batch did not close once a slot was free")
	}
	if len(b.sem) != 1 {
		t.Fatalf("gather returned holding %d slots, want 1", len(b.sem))
	}
}
