package ledgerbench

import (
	"math"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueInOrder(t *testing.T) {
	prev := -1
	for us := uint64(0); us <= maxLatencyUs; us += 1 + us/1000 {
		i := bucketOf(us)
		if i < prev || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d (buckets %d)", us, i, prev, histBuckets)
		}
		lo, width := bucketRange(i)
		if us < lo || us >= lo+width {
			t.Fatalf("bucketOf(%d) = %d whose range is [%d, %d)", us, i, lo, lo+width)
		}
		prev = i
	}
	if got := bucketOf(maxLatencyUs); got != histBuckets-1 {
		t.Fatalf("last bucket %d, want %d", got, histBuckets-1)
	}
}

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{3 * time.Millisecond}, 0.99, 3 * time.Millisecond},
		{"exact small", []time.Duration{10 * time.Microsecond, 20 * time.Microsecond, 30 * time.Microsecond}, 0.5, 20 * time.Microsecond},
		{"p99 of 1..1000 ms", ramp(1000, time.Millisecond), 0.99, 990 * time.Millisecond},
		{"p50 of 1..1000 ms", ramp(1000, time.Millisecond), 0.5, 500 * time.Millisecond},
		{"clamped", []time.Duration{time.Hour}, 0.5, maxLatencyUs * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h histogram
			for _, d := range tc.samples {
				h.record(d)
			}
			got := h.quantile(tc.q)
			if tol := float64(tc.want) / 128; math.Abs(float64(got-tc.want)) > tol+float64(time.Microsecond) {
				t.Fatalf("quantile(%v) = %v, want %v ± %v", tc.q, got, tc.want, time.Duration(tol))
			}
		})
	}
}

func ramp(n int, step time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * step
	}
	return out
}

// TestClosedLoopBound: the bound of the client mode is callers over the
// time of one commit of that many transfers, the commit time fitted
// through the two measured points; without two distinct points there is
// none.
func TestClosedLoopBound(t *testing.T) {
	c := &Result{Clients: 32, BatchTransactionsAvg: 20, BatchMsAvg: 2}
	b := &Result{BatchTransactionsAvg: 1020, BatchMsAvg: 102}
	// 0.1 ms per transfer, nothing fixed: 32 transfers take 3.2 ms.
	got, ok := closedLoopBound(c, b)
	if want := 32 / 0.0032; !ok || math.Abs(got-want) > 1e-6*want {
		t.Fatalf("bound %v %v, want %v", got, ok, want)
	}
	c.BatchMsAvg, b.BatchMsAvg = 3, 103 // 0.1 ms per transfer and 1 ms fixed: 4.2 ms
	if got, _ := closedLoopBound(c, b); math.Abs(got-32/0.0042) > 1e-3 {
		t.Fatalf("bound with a fixed cost %v, want %v", got, 32/0.0042)
	}
	if _, ok := closedLoopBound(c, &Result{BatchTransactionsAvg: 20, BatchMsAvg: 5}); ok {
		t.Fatal("a bound from one point")
	}
}
