package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestReads(t *testing.T, cfg ReadsConfig) (*Reads[string], *fakeClock) {
	t.Helper()
	clk := &fakeClock{}
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	r, err := NewReads[string](cfg, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	return r, clk
}

func TestReadsCoalesce(t *testing.T) {
	r, _ := newTestReads(t, ReadsConfig{})
	var calls atomic.Int32
	gate := make(chan struct{})
	fn := func(ctx context.Context) (string, error) {
		calls.Add(1)
		<-gate
		return "v", nil
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			v, stale, err := r.Do(context.Background(), "k", fn)
			if err != nil || v != "v" || stale {
				errs <- fmt.Errorf("got %q %v %w", v, stale, err)
			}
		})
	}
	// The first call runs; callers that arrived before it started share it,
	// every later one waits on the one call queued behind it (never joining
	// a call that started before it arrived). Wait until all n are waiting.
	waitFor(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		f := r.flights["k"]
		if f == nil || calls.Load() != 1 {
			return false
		}
		waiting := f.callers
		if f.after != nil {
			waiting += f.after.callers
		}
		return waiting == n
	})
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c := calls.Load(); c > 2 {
		t.Fatalf("%d backend calls for %d concurrent identical reads, want at most 2", c, n)
	}
}

// TestReadsSeeWritesBeforeThem: a read that arrives while a call for its
// key is running (and may have read before the caller's write committed)
// gets the answer of a call that started after it arrived, never the older
// one, and never a cached one while the backend works.
func TestReadsSeeWritesBeforeThem(t *testing.T) {
	reads, err := NewReads[int64](ReadsConfig{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var version atomic.Int64 // the "database": bumped by each write
	started := make(chan struct{})
	gate := make(chan struct{})
	slow := func(ctx context.Context) (int64, error) {
		v := version.Load() // the snapshot is taken when the call starts
		close(started)
		<-gate
		return v, nil
	}
	first := make(chan int64, 1)
	go func() {
		v, _, _ := reads.Do(context.Background(), "k", slow)
		first <- v
	}()
	<-started
	version.Add(1) // a write commits and is acknowledged while the first read runs
	fresh := func(ctx context.Context) (int64, error) { return version.Load(), nil }
	second := make(chan int64, 1)
	go func() {
		v, _, _ := reads.Do(context.Background(), "k", fresh)
		second <- v
	}()
	close(gate)
	if v := <-first; v != 0 {
		t.Fatalf("first read %d, want 0", v)
	}
	if v := <-second; v != 1 {
		t.Fatalf("a read after the write returned version %d, want 1 (it joined a call that started before it)", v)
	}
	// With the backend healthy every read goes to it: no cached answer.
	version.Add(1)
	if v, stale, err := reads.Do(context.Background(), "k", fresh); v != 2 || stale || err != nil {
		t.Fatalf("read after a second write: %d stale=%v err=%v, want 2", v, stale, err)
	}
}

func TestReadsStaleOnlyOnError(t *testing.T) {
	r, clk := newTestReads(t, ReadsConfig{MaxStale: 10 * time.Second})
	ctx := context.Background()
	var calls int
	fail := errors.New("database down")
	ok := func(v string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { calls++; return v, nil }
	}
	bad := func(context.Context) (string, error) { calls++; return "", fail }

	if v, _, _ := r.Do(ctx, "k", ok("v1")); v != "v1" {
		t.Fatalf("first read %q", v)
	}
	clk.Advance(500 * time.Millisecond)
	if v, stale, _ := r.Do(ctx, "k", ok("v2")); v != "v2" || stale || calls != 2 {
		t.Fatalf("second read: %q stale=%v calls=%d, want fresh v2 from the backend", v, stale, calls)
	}
	clk.Advance(time.Second)
	if v, stale, err := r.Do(ctx, "k", bad); v != "v2" || !stale || err != nil {
		t.Fatalf("backend failed: %q stale=%v err=%v, want stale v2", v, stale, err)
	}
	if v, stale, _ := r.Do(ctx, "k", ok("v3")); v != "v3" || stale {
		t.Fatalf("backend back: %q stale=%v", v, stale)
	}
	clk.Advance(12 * time.Second) // past MaxStale
	if _, _, err := r.Do(ctx, "k", bad); !errors.Is(err, fail) {
		t.Fatalf("past MaxStale: err %v, want the backend error", err)
	}
	if _, _, err := r.Do(ctx, "other", bad); !errors.Is(err, fail) {
		t.Fatalf("never cached: err %v", err)
	}
}

func TestReadsStaleWhenShed(t *testing.T) {
	c, _ := newTestController(t, Config{InitialLimit: 4, MinLimit: 2})
	reads, clk := newTestReads(t, ReadsConfig{})
	var backendCalls atomic.Int32
	h := c.Middleware(classifyTest, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, stale, err := reads.Do(r.Context(), "balance:42", func(ctx context.Context) (string, error) {
			backendCalls.Add(1)
			return "100 EUR", nil
		})
		if err != nil {
			if !WriteError(w, err) {
				http.Error(w, err.Error(), http.StatusBadGateway)
			}
			return
		}
		if stale {
			MarkStale(w.Header())
		}
		w.Write([]byte(v))
	}))
	if w := serve(h, "GET", "/reads?stale=ok", nil); w.Code != 200 || w.Body.String() != "100 EUR" {
		t.Fatalf("warm-up: %d %q", w.Code, w.Body)
	}
	clk.Advance(2 * time.Second)
	held := hold(t, c, reqRead, 4)
	defer release(held)

	w := serve(h, "GET", "/reads?stale=ok", nil)
	if w.Code != 200 || w.Header().Get(StaleHeader) != "true" || w.Body.String() != "100 EUR" {
		t.Fatalf("shed read with a stale entry: %d %q stale=%q", w.Code, w.Body, w.Header().Get(StaleHeader))
	}
	if n := backendCalls.Load(); n != 1 {
		t.Fatalf("%d backend calls, want 1: a shed read must not reach the backend", n)
	}
	// A shed read without StaleOK, or without an entry, gets the 503.
	if w := serve(h, "GET", "/reads", nil); w.Code != 503 {
		t.Fatalf("shed read without StaleOK: %d", w.Code)
	}
	reads2, _ := newTestReads(t, ReadsConfig{})
	ctx := context.WithValue(context.Background(), rejectionKey{}, error(&Rejection{Reason: ReasonCapacity}))
	if _, _, err := reads2.Do(ctx, "k", nil); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("shed with nothing cached: %v", err)
	}
}

func TestReadsBounded(t *testing.T) {
	r, clk := newTestReads(t, ReadsConfig{MaxEntries: 3})
	for i := range 5 {
		clk.Advance(time.Millisecond)
		k := fmt.Sprint(i)
		if _, _, err := r.Do(context.Background(), k, func(context.Context) (string, error) { return k, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.Len(); n != 3 {
		t.Fatalf("%d entries, want MaxEntries 3", n)
	}
	// The oldest two were evicted.
	for i, want := range []bool{false, false, true, true, true} {
		_, ok := r.lookup(fmt.Sprint(i))
		if ok != want {
			t.Errorf("key %d cached=%v, want %v", i, ok, want)
		}
	}
}

func TestReadsCallerLeaves(t *testing.T) {
	r, _ := newTestReads(t, ReadsConfig{})
	gate := make(chan struct{})
	defer close(gate)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, _, err := r.Do(ctx, "k", func(context.Context) (string, error) { <-gate; return "", nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the caller's deadline", err)
	}
}
