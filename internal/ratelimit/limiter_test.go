package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
)

func pausedWaiters(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "bulwark_ratelimit_paused_waiters" {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// fakeRates is a settable Rates: every Set closes the current change channel.
type fakeRates struct {
	mu      sync.Mutex
	rates   map[string]float64 // task → rate, any tenant
	changed chan struct{}
}

func newFakeRates(task string, r float64) *fakeRates {
	return &fakeRates{rates: map[string]float64{task: r}, changed: make(chan struct{})}
}

func (f *fakeRates) Rate(_, task string) (float64, <-chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rates[task]
	return r, f.changed, ok
}

func (f *fakeRates) Set(task string, r float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rates[task] = r
	close(f.changed)
	f.changed = make(chan struct{})
}

var key = ratelimit.Key{Tenant: "acme", Task: "recompute", Partition: 3}

// generous bounds how long an event that should be near-instant may take on
// a loaded machine; tests never assert a lower bound tighter than the rate.
const generous = 5 * time.Second

func waitAsync(ctx context.Context, l *ratelimit.Limiter, k ratelimit.Key) <-chan error {
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx, k) }()
	return done
}

func TestPausedAtZeroResumesWhenRateRises(t *testing.T) {
	rates := newFakeRates("recompute", 0)
	l := ratelimit.New(rates)
	if l.Try(key) {
		t.Fatal("Try succeeded at rate 0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx, key); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait at rate 0 = %v, want deadline exceeded", err)
	}
	done := waitAsync(context.Background(), l, key)
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v while paused", err)
	case <-time.After(100 * time.Millisecond):
	}
	rates.Set("other", 1) // an unrelated change wakes the waiter, which stays paused
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v on an unrelated change", err)
	case <-time.After(50 * time.Millisecond):
	}
	rates.Set("recompute", 100)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(generous):
		t.Fatal("Wait did not resume after the rate rose")
	}
}

func TestPauseWhileWaitingForToken(t *testing.T) {
	rates := newFakeRates("recompute", 0.01) // one token per 100 s
	l := ratelimit.New(rates)
	if !l.Try(key) {
		t.Fatal("first token refused")
	}
	done := waitAsync(context.Background(), l, key)
	time.Sleep(20 * time.Millisecond)
	rates.Set("recompute", 0) // pause: the waiter must keep waiting
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v after the pause", err)
	case <-time.After(100 * time.Millisecond):
	}
	rates.Set("recompute", 1000) // the new rate applies to the waiter at once
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(generous):
		t.Fatal("waiter kept the old 100 s delay")
	}
}

func TestTryFollowsRateAndBurst(t *testing.T) {
	rates := newFakeRates("recompute", 5)
	l := ratelimit.New(rates)
	n := 0
	for l.Try(key) {
		n++
		if n > 100 {
			t.Fatal("bucket never empties")
		}
	}
	// Burst is one second of tokens: 5, plus at most one refilled meanwhile.
	if n < 5 || n > 6 {
		t.Fatalf("took %d tokens at once at rate 5, want 5", n)
	}
	other := key
	other.Partition = 4
	if !l.Try(other) {
		t.Fatal("another partition shares the bucket")
	}
	rates.Set("recompute", 1e5)
	start := time.Now()
	for !l.Try(key) {
		if time.Since(start) > generous {
			t.Fatal("no token after raising the rate")
		}
		time.Sleep(time.Millisecond)
	}
	if l.Try(ratelimit.Key{Tenant: "acme", Task: "nope"}) {
		t.Fatal("Try of an unknown task succeeded")
	}
	if err := l.Wait(context.Background(), ratelimit.Key{Task: "nope"}); !errors.Is(err, ratelimit.ErrUnknownTask) {
		t.Fatalf("Wait of an unknown task = %v", err)
	}
}

func TestWaitPacesAtRate(t *testing.T) {
	rates := newFakeRates("recompute", 50) // burst 50, then one per 20 ms
	l := ratelimit.New(rates)
	start := time.Now()
	for range 60 {
		if err := l.Wait(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	// 10 tokens beyond the burst at 50/s need ≥ ~200 ms; allow slack below
	// for refill during the burst, and no upper bound beyond generous.
	if d := time.Since(start); d < 150*time.Millisecond || d > generous {
		t.Fatalf("60 tokens at 50/s with burst 50 took %v", d)
	}
}

func TestBoundedBuckets(t *testing.T) {
	rates := newFakeRates("recompute", 0)
	reg := prometheus.NewRegistry()
	l := ratelimit.New(rates, ratelimit.WithMaxBuckets(4), ratelimit.WithRegisterer(reg))
	rates.Set("recompute", 10)
	for p := range int32(10) {
		if !l.Try(ratelimit.Key{Tenant: "acme", Task: "recompute", Partition: p}) {
			t.Fatalf("partition %d refused", p)
		}
		if l.Len() > 4 {
			t.Fatalf("%d buckets, max 4", l.Len())
		}
	}
	// Fill the table with paused waiters: nothing can be evicted.
	rates.Set("recompute", 0)
	ctx, cancel := context.WithCancel(context.Background())
	var waiters []<-chan error
	for p := range int32(4) {
		waiters = append(waiters, waitAsync(ctx, l, ratelimit.Key{Tenant: fmt.Sprint("t", p), Task: "recompute"}))
	}
	deadline := time.Now().Add(generous)
	for pausedWaiters(t, reg) < 4 {
		if time.Now().After(deadline) {
			t.Fatal("waiters did not all block")
		}
		time.Sleep(time.Millisecond)
	}
	short, stop := context.WithTimeout(context.Background(), time.Second)
	defer stop()
	if err := l.Wait(short, ratelimit.Key{Tenant: "late", Task: "recompute"}); !errors.Is(err, ratelimit.ErrTooManyBuckets) {
		t.Fatalf("full table of waiters: Wait = %v, want ErrTooManyBuckets", err)
	}
	if l.Try(ratelimit.Key{Tenant: "late", Task: "recompute"}) {
		t.Fatal("Try succeeded on a full table")
	}
	cancel()
	for _, w := range waiters {
		if err := <-w; !errors.Is(err, context.Canceled) {
			t.Fatalf("paused waiter ended with %v", err)
		}
	}
}

func BenchmarkTry(b *testing.B) {
	l := ratelimit.New(newFakeRates("recompute", 1e6))
	b.ReportAllocs()
	for b.Loop() {
		l.Try(key)
	}
}
