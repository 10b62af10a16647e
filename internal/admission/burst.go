package admission

import "sync"

// burstBuckets splits the burst window. A window of 100 ms in 10 buckets
// of 10 ms slides in 10 ms steps: a burst straddling the edge of a fixed
// window (limit at 95 ms, limit again at 105 ms) is caught, which a
// per-second limit and a fixed 100 ms window would both admit.
const burstBuckets = 10

// burst is the sliding-window ("bottom") limiter: at most limit requests in
// any window of burstBuckets consecutive buckets. The window is therefore
// between (burstBuckets-1) and burstBuckets buckets long; the current
// bucket's elapsed part decides.
//
// A mutex guards it: each call is a few dozen nanoseconds of work, and the
// lock-free variants (packed epoch and count per bucket) admit a few extra
// requests under races, which is what a hard limit must not do.
type burst struct {
	limit    int64
	bucketNs int64

	mu     sync.Mutex
	counts [burstBuckets]int64 // guarded by mu
	head   int64               // guarded by mu; bucket number (now/bucketNs) of the newest bucket
	sum    int64               // guarded by mu; sum of counts
}

func newBurst(limit int, windowNs int64) *burst {
	return &burst{limit: int64(limit), bucketNs: windowNs / burstBuckets}
}

// allow counts one request at now (nanoseconds on the controller's clock)
// and reports whether it fits. A forced request (the highest level) is
// counted even when the window is full.
func (b *burst) allow(now int64, force bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advanceLocked(now / b.bucketNs)
	if b.sum >= b.limit && !force {
		return false
	}
	b.counts[b.head%burstBuckets]++
	b.sum++
	return true
}

// advanceLocked moves the window so that bucket number cur is the newest,
// zeroing the buckets that fell out. Time going backwards (a clock step) is
// treated as the current bucket.
func (b *burst) advanceLocked(cur int64) {
	if cur <= b.head {
		return
	}
	if cur-b.head >= burstBuckets {
		b.counts = [burstBuckets]int64{}
		b.sum = 0
		b.head = cur
		return
	}
	for b.head < cur {
		b.head++
		i := b.head % burstBuckets
		b.sum -= b.counts[i]
		b.counts[i] = 0
	}
}

// count returns the requests in the window ending at now.
func (b *burst) count(now int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advanceLocked(now / b.bucketNs)
	return b.sum
}
