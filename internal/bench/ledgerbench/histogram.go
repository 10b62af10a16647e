package ledgerbench

import (
	"math/bits"
	"time"
)

// histogram counts latencies in microseconds in log-linear buckets: exact
// below 128 µs, then 64 buckets per power of two, so a quantile is within
// 1/128 (0.8 %) of the true value. Its size is fixed (histBuckets × 8 B ≈
// 10.5 KiB) however long the run.
type histogram struct {
	counts [histBuckets]uint64
	total  uint64
}

const (
	subBits  = 6
	subCount = 1 << subBits // buckets per power of two
	// maxLatencyBits bounds a recorded value: 2^26 µs ≈ 67 s, above
	// requestTimeout. Longer values are clamped into the last bucket.
	maxLatencyBits = 26
	maxLatencyUs   = 1<<maxLatencyBits - 1
	// histBuckets: 128 exact buckets, then 64 for each of the powers of two
	// from 2^7 to 2^25 (19 of them).
	histBuckets = 2*subCount + (maxLatencyBits-subBits-1)*subCount
)

func (h *histogram) record(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	h.counts[bucketOf(min(us, maxLatencyUs))]++
	h.total++
}

func (h *histogram) merge(o *histogram) {
	for i := range h.counts {
		h.counts[i] += o.counts[i]
	}
	h.total += o.total
}

// quantile returns the q-quantile (0 < q <= 1) as the middle of its bucket;
// zero when nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, width := bucketRange(i)
			return time.Duration(lo+width/2) * time.Microsecond
		}
	}
	panic("ledgerbench: histogram total does not match its counts")
}

func bucketOf(us uint64) int {
	if us < 2*subCount {
		return int(us)
	}
	shift := bits.Len64(us) - subBits - 1 // us>>shift is in [64, 128)
	return 2*subCount + (shift-1)*subCount + int(us>>shift) - subCount
}

// bucketRange returns the lowest value of bucket i and its width (µs).
func bucketRange(i int) (lo, width uint64) {
	if i < 2*subCount {
		return uint64(i), 1
	}
	shift := (i-2*subCount)/subCount + 1
	m := uint64((i-2*subCount)%subCount + subCount)
	return m << shift, 1 << shift
}
