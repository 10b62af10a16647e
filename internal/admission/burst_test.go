package admission

import (
	"testing"
	"time"
)

func admitN(b *burst, at time.Duration, n int) (ok int) {
	for range n {
		if b.allow(int64(at), false) {
			ok++
		}
	}
	return ok
}

// TestBurstWindowEdges: 10 requests per 100 ms in 10 ms buckets.
func TestBurstWindowEdges(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		steps []struct {
			at       time.Duration
			n, admit int
		}
	}{
		{"fills and rejects", []struct {
			at       time.Duration
			n, admit int
		}{{0, 12, 10}}},
		// A fixed 100 ms window would reset at 100 ms and admit 20 in 10 ms.
		{"straddles a fixed-window edge", []struct {
			at       time.Duration
			n, admit int
		}{{95 * ms, 10, 10}, {105 * ms, 10, 0}}},
		// At 189 ms the window is buckets 9..18 and still holds the 95 ms
		// requests (bucket 9); at 190 ms bucket 9 has left.
		{"slides out bucket by bucket", []struct {
			at       time.Duration
			n, admit int
		}{{95 * ms, 10, 10}, {189 * ms, 1, 0}, {190 * ms, 10, 10}}},
		{"spread evenly passes", []struct {
			at       time.Duration
			n, admit int
		}{{0, 5, 5}, {50 * ms, 5, 5}, {100 * ms, 5, 5}, {150 * ms, 5, 5}, {160 * ms, 1, 0}}},
		{"long idle resets", []struct {
			at       time.Duration
			n, admit int
		}{{0, 10, 10}, {10 * time.Second, 10, 10}}},
		{"clock going back counts in the newest bucket", []struct {
			at       time.Duration
			n, admit int
		}{{50 * ms, 10, 10}, {40 * ms, 1, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBurst(10, int64(100*ms))
			for i, s := range tc.steps {
				if got := admitN(b, s.at, s.n); got != s.admit {
					t.Fatalf("step %d at %v: admitted %d of %d, want %d", i, s.at, got, s.n, s.admit)
				}
			}
		})
	}
}

func TestBurstForcedCounts(t *testing.T) {
	b := newBurst(3, int64(100*time.Millisecond))
	for range 5 {
		if !b.allow(0, true) {
			t.Fatal("forced request rejected")
		}
	}
	if b.allow(0, false) {
		t.Fatal("unforced request admitted into a window full of forced ones")
	}
	if n := b.count(0); n != 5 {
		t.Fatalf("count %d, want 5", n)
	}
}
