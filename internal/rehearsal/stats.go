package rehearsal

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// outcome of one arrival.
type outcome uint8

const (
	achieved outcome = iota // answered 2xx
	rejected                // answered 429 or 503
	failed                  // transport failure, timeout, any other status
	dropped                 // not sent: MaxInFlight reached
)

// tally counts one stage's arrivals of one class.
type tally struct {
	offered, achieved, dropped, errors int64
	rejected                           map[string]int64 // by problem code
	latencies                          []time.Duration  // of achieved requests, at most maxSamples
}

func (t *tally) rejectedTotal() int64 {
	var n int64
	for _, v := range t.rejected {
		n += v
	}
	return n
}

// check asserts the accounting invariant: every arrival ended in exactly
// one outcome. A violation is a bug of this package.
func (t *tally) check(class string) {
	if sum := t.achieved + t.rejectedTotal() + t.dropped + t.errors; sum != t.offered {
		panic(fmt.Sprintf("rehearsal: class %s: offered %d != achieved %d + rejected %d + dropped %d + errors %d",
			class, t.offered, t.achieved, t.rejectedTotal(), t.dropped, t.errors))
	}
}

// percentile of the achieved latencies (nearest rank), 0 when none.
func (t *tally) percentile(p float64) time.Duration {
	return percentile(t.latencies, p)
}

func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// counts is a live view of one stage: the tallies of its classes, under mu.
type counts struct {
	mu      sync.Mutex
	tallies []tally // guarded by mu; one per class of the mix, in order
}

func newCounts(n int) *counts {
	c := &counts{tallies: make([]tally, n)}
	for i := range c.tallies {
		c.tallies[i].rejected = map[string]int64{}
	}
	return c
}

func (c *counts) arrive(ci int) {
	c.mu.Lock()
	c.tallies[ci].offered++
	c.mu.Unlock()
}

func (c *counts) end(ci int, o outcome, code string, latency time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &c.tallies[ci]
	switch o {
	case achieved:
		t.achieved++
		if len(t.latencies) < maxSamples {
			t.latencies = append(t.latencies, latency)
		}
	case rejected:
		t.rejected[code]++
	case failed:
		t.errors++
	case dropped:
		t.dropped++
	}
}

// snapshot copies the tallies (latencies included).
func (c *counts) snapshot() []tally {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.tallies)
	for i := range out {
		out[i].rejected = maps.Clone(out[i].rejected)
		out[i].latencies = slices.Clone(out[i].latencies)
	}
	return out
}
