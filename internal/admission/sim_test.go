package admission

import (
	"container/heap"
	"math/rand/v2"
	"time"
)

// sim drives a Controller in front of a simulated backend of `servers`
// FIFO servers with a fixed service time, on the fake clock: a
// deterministic stand-in for the overload bench, fast enough for -race.
type sim struct {
	c       *Controller
	clk     *fakeClock
	free    int64Heap // time each server becomes free, ns
	pending doneHeap  // admitted requests by completion time
	service time.Duration
	jitter  float64 // service time varies uniformly by ±jitter
	rng     *rand.Rand
	// outcome, if set, decides the outcome and latency of a request
	// admitted at t that the backend would finish at finish.
	outcome func(t, finish int64) (Outcome, int64)
}

type simClass struct {
	name  string
	share float64
	req   Request
}

type simStats struct {
	offered, admitted, completed map[string]int
	latencySum                   map[string]time.Duration
	latencyMax                   map[string]time.Duration
	limitSum, limitN             float64
	maxThreshold                 float64
}

func newSim(c *Controller, clk *fakeClock, servers int, service time.Duration, seed uint64) *sim {
	s := &sim{c: c, clk: clk, service: service, rng: rand.New(rand.NewPCG(seed, 1))}
	for range servers {
		s.free = append(s.free, 0)
	}
	return s
}

// run offers rate requests a second for dur, at even spacing, picking a
// class at random by share. Statistics are collected after warmup.
func (s *sim) run(rate float64, dur, warmup time.Duration, classes []simClass) *simStats {
	st := &simStats{offered: map[string]int{}, admitted: map[string]int{}, completed: map[string]int{},
		latencySum: map[string]time.Duration{}, latencyMax: map[string]time.Duration{}}
	start := s.clk.Since0()
	step := time.Duration(float64(time.Second) / rate)
	for t := start; t < start+dur; t += step {
		s.completeUntil(int64(t), st, t-start >= warmup)
		s.clk.Set(t)
		cl := pick(s.rng, classes)
		measure := t-start >= warmup
		if measure {
			st.offered[cl.name]++
			st.limitSum += float64(s.c.Stats().Limit)
			st.limitN++
			st.maxThreshold = max(st.maxThreshold, s.c.Stats().Threshold)
		}
		tk, err := s.c.Admit(cl.req)
		if err != nil {
			continue
		}
		if measure {
			st.admitted[cl.name]++
		}
		svc := s.service
		if s.jitter > 0 {
			svc = time.Duration(float64(svc) * (1 + s.jitter*(2*s.rng.Float64()-1)))
		}
		begin := max(int64(t), s.free[0])
		finish := begin + int64(svc)
		s.free[0] = finish
		heap.Fix(&s.free, 0)
		o, at := Success, finish
		if s.outcome != nil {
			o, at = s.outcome(int64(t), finish)
		}
		heap.Push(&s.pending, simDone{at: at, admitted: int64(t), t: tk, o: o, class: cl.name})
	}
	s.completeUntil(int64(start+dur), st, true)
	return st
}

func (s *sim) completeUntil(t int64, st *simStats, measure bool) {
	for len(s.pending) > 0 && s.pending[0].at <= t {
		d := heap.Pop(&s.pending).(simDone)
		s.clk.Set(time.Duration(d.at))
		d.t.Done(d.o)
		if measure && d.o == Success {
			lat := time.Duration(d.at - d.admitted)
			st.completed[d.class]++
			st.latencySum[d.class] += lat
			st.latencyMax[d.class] = max(st.latencyMax[d.class], lat)
		}
	}
}

// drain completes everything still pending.
func (s *sim) drain() {
	for len(s.pending) > 0 {
		d := heap.Pop(&s.pending).(simDone)
		s.clk.Set(max(s.clk.Since0(), time.Duration(d.at)))
		d.t.Done(d.o)
	}
}

func pick(rng *rand.Rand, classes []simClass) simClass {
	u := rng.Float64()
	for _, c := range classes {
		if u < c.share {
			return c
		}
		u -= c.share
	}
	return classes[len(classes)-1]
}

type simDone struct {
	at, admitted int64
	t            Ticket
	o            Outcome
	class        string
}

type int64Heap []int64

func (h int64Heap) Len() int           { return len(h) }
func (h int64Heap) Less(i, j int) bool { return h[i] < h[j] }
func (h int64Heap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *int64Heap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *int64Heap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type doneHeap []simDone

func (h doneHeap) Len() int           { return len(h) }
func (h doneHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h doneHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *doneHeap) Push(x any)        { *h = append(*h, x.(simDone)) }
func (h *doneHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
