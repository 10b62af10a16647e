package client

import (
	"strings"
	"testing"
	"time"
)

// TestGatherSplits: a batch closes before a repeated key and before the
// byte bound; the call that closed it opens the next batch.
func TestGatherSplits(t *testing.T) {
	b := &batcher{maxItems: 100, linger: time.Millisecond, maxBytes: 3000, queue: make(chan *call, 10), stop: make(chan struct{})}
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
