package ledgerbench

import (
	"context"
	"testing"
	"time"
)

// TestWindowWaitsForMinimumRequests pins the fix for naive batch100
// measuring 0 transfers: a window whose planned end passes before any
// request finished stays open until the minimum has finished, and a
// request counts exactly when it finished before the end.
func TestWindowWaitsForMinimumRequests(t *testing.T) {
	start := time.Now()
	w := newWindow(start, start.Add(20*time.Millisecond), 2)
	if w.finish(start.Add(-time.Millisecond)) {
		t.Fatal("a request that finished before the window counted")
	}
	closed := make(chan time.Time, 1)
	go func() {
		end, err := w.close(context.Background())
		if err != nil {
			t.Error(err)
		}
		closed <- end
	}()
	time.Sleep(60 * time.Millisecond) // well past the planned end
	if !w.open() {
		t.Fatal("window closed at its planned end with 0 of 2 requests finished")
	}
	w.finish(time.Now())
	w.finish(time.Now())
	end := <-closed
	if w.open() {
		t.Fatal("window still open after close returned")
	}
	if end.Sub(start) < 60*time.Millisecond {
		t.Fatalf("window lasted %s, want it extended past 60ms", end.Sub(start))
	}
	if w.finish(end) || !w.finish(end.Add(-time.Nanosecond)) {
		t.Fatal("a request counts exactly when it finished before the end")
	}
}

// TestWindowClosesWhenContextEnds: a window waiting for requests that never
// finish still closes when the run is cancelled, so clients stop.
func TestWindowClosesWhenContextEnds(t *testing.T) {
	start := time.Now()
	w := newWindow(start, start, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := w.close(ctx); err == nil {
		t.Fatal("close without requests returned before its bound without error")
	}
	if w.open() {
		t.Fatal("window open after its context ended")
	}
}
