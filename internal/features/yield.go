package features

import "runtime"

// yieldEvery is how many items a long loop of the live path handles
// between two runtime.Gosched calls (see giveWay).
const yieldEvery = 64

// giveWay yields the processor every yieldEvery calls (i counts them).
// The live path's loops (decoding, aggregating, merging a batch's tiles)
// run for tens of milliseconds without blocking; with GOMAXPROCS at the
// machine's 2 cores, a request goroutine woken by the network waited for
// the loop's preemption (Go preempts after 10 ms), and an execution trace
// of the benchmark's read phase showed HTTP connections runnable for over
// 5 ms 31 times in 5 s. Yielding puts the loop behind them in the run
// queue; a Gosched costs well under a microsecond, so every 64 items is
// about 1 % of the loop.
func giveWay(i int) {
	if i%yieldEvery == yieldEvery-1 {
		runtime.Gosched()
	}
}
