package overloadbench

import (
	"bufio"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/admission"
)

type kind uint8

const (
	succeeded kind = iota // 2xx within the deadline
	rejected              // 429 or 503 from admission control
	failed                // timed out, 5xx, transport error, or not sent (generator full)
)

type sample struct {
	class   uint8
	kind    kind
	notSent bool // MaxOutstanding was full: not sent, counted failed
	// connWait: every connection was busy when the request was due, so it
	// waited for one; that wait is the server's (a slow server holds the
	// connections) and counts in latency.
	connWait bool
	// latency is from writing the request on an idle connection to the end
	// of the response, plus the wait for a connection if connWait.
	latency time.Duration
	// lag is the generator's own delay: from the time the request was due
	// to the time it was written, when a connection was free (0 if
	// connWait). A generator starved of CPU shows here, not in latency.
	lag time.Duration
}

// load sends requests to the server and records their outcomes.
//
// It is a pool of workers, each owning one keep-alive connection and
// sending one request at a time on it: no goroutine, Transport queue or
// connection setup per request, so that at 10× of capacity on a small
// machine the generator spends little CPU per request and a rejection is
// timed from the write on a ready connection to the last byte of the
// answer. A worker is added, up to MaxConns, when a request is due and no
// worker is idle; workers and their connections live for the whole run.
type load struct {
	cfg  Config
	addr string
	reqs [][]byte // the raw HTTP/1.1 request of each class

	jobs    chan job
	idle    atomic.Int64 // workers waiting for a job
	workers atomic.Int64 // workers started
	wg      sync.WaitGroup

	outstanding atomic.Int64 // requests due and not yet ended
	skipped     atomic.Int64 // requests not sent: MaxOutstanding full
	dials       atomic.Int64 // connections opened
}

type job struct {
	ci       uint8
	due      time.Time
	connWait bool
	done     func(sample) // nil: do not record
}

func newLoad(cfg Config, addr string) *load {
	l := &load{cfg: cfg, addr: addr, jobs: make(chan job, cfg.MaxOutstanding)}
	for _, cl := range cfg.Classes {
		r := "GET /" + cl.Route + " HTTP/1.1\r\nHost: " + addr + "\r\n"
		if cl.Traffic != "" {
			r += admission.TrafficHeader + ": " + cl.Traffic + "\r\n"
		}
		l.reqs = append(l.reqs, []byte(r+"\r\n"))
	}
	return l
}

// close stops the workers and closes their connections; every phase must
// have ended.
func (l *load) close() {
	close(l.jobs)
	l.wg.Wait()
}

// conn is one keep-alive connection to the server.
type conn struct {
	l  *load
	c  net.Conn
	br *bufio.Reader
}

// roundTrip sends the request of class ci and reads the answer. It returns
// the status, or an error (the connection is then closed and the next call
// dials again).
func (c *conn) roundTrip(ci int) (int, error) {
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.l.addr, c.l.cfg.RequestTimeout)
		if err != nil {
			return 0, err
		}
		c.l.dials.Add(1)
		c.c = nc
		if c.br == nil {
			c.br = bufio.NewReaderSize(nc, 4096)
		} else {
			c.br.Reset(nc)
		}
	}
	// The server answers every request by its deadline; this is only a
	// safety net.
	_ = c.c.SetDeadline(time.Now().Add(c.l.cfg.RequestTimeout + 2*time.Second))
	if _, err := c.c.Write(c.l.reqs[ci]); err != nil {
		c.reset()
		return 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.reset()
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		c.reset()
	}
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

func (c *conn) reset() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

func (l *load) classify(status int, latency time.Duration) kind {
	switch {
	case status/100 == 2 && latency <= l.cfg.RequestTimeout:
		return succeeded
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return rejected
	}
	return failed
}

// worker serves jobs on its own connection until the pool closes. idle
// counts the workers free for a job: a worker adds itself when it is done
// with a job, and submit takes one off for each job it queues, so that two
// jobs never count on the same idle worker. A new worker starts without
// adding itself: the job that started it is for it.
func (l *load) worker() {
	defer l.wg.Done()
	c := &conn{l: l}
	defer c.reset()
	for first := true; ; first = false {
		if !first {
			l.idle.Add(1)
		}
		j, ok := <-l.jobs
		if !ok {
			return
		}
		start := time.Now()
		status, err := c.roundTrip(int(j.ci))
		end := time.Now()
		s := sample{class: j.ci, kind: failed, connWait: j.connWait}
		if j.connWait {
			s.latency = end.Sub(j.due)
		} else {
			s.latency = end.Sub(start)
			s.lag = start.Sub(j.due)
		}
		if err == nil {
			s.kind = l.classify(status, s.latency)
		}
		l.outstanding.Add(-1)
		if j.done != nil {
			j.done(s)
		}
	}
}

// submit queues a request of class ci due now, adding a worker if none is
// idle. It reports false, sending nothing, when MaxOutstanding requests are
// already due and not ended.
func (l *load) submit(ci int, due time.Time, done func(sample)) bool {
	if l.outstanding.Add(1) > int64(l.cfg.MaxOutstanding) {
		l.outstanding.Add(-1)
		l.skipped.Add(1)
		return false
	}
	// idle < 0 after the claim: no worker is free. Start one if the pool
	// may grow; otherwise the job waits for a busy one, and the debt
	// stays in idle until a worker frees up and takes it.
	connWait := false
	if l.idle.Add(-1) < 0 {
		if l.workers.Add(1) <= int64(l.cfg.MaxConns) {
			l.idle.Add(1)
			l.wg.Add(1)
			go l.worker()
		} else {
			l.workers.Add(-1)
			connWait = true
		}
	}
	l.jobs <- job{ci: uint8(ci), due: due, connWait: connWait, done: done}
	return true
}

// openLoop offers rate requests a second for dur, evenly spaced whatever
// the answers (open loop: a slow server does not slow the offer, as with
// real users), picking classes at random by share. Requests due during the
// first warmup are sent but not recorded. It returns when every request
// has ended.
func (l *load) openLoop(ctx context.Context, rate float64, dur, warmup time.Duration, seed uint64) []sample {
	rng := rand.New(rand.NewPCG(seed, 7))
	var (
		mu      sync.Mutex
		samples = make([]sample, 0, min(int(rate*dur.Seconds())+1, maxPhaseRequests))
		wg      sync.WaitGroup
	)
	record := func(s sample) {
		mu.Lock()
		if len(samples) < maxPhaseRequests {
			samples = append(samples, s)
		}
		mu.Unlock()
	}
	recordDone := func(s sample) { record(s); wg.Done() }
	countDone := func(sample) { wg.Done() }
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; ctx.Err() == nil; i++ {
		at := time.Duration(i) * interval
		if at >= dur {
			break
		}
		// Sleep only when at least a millisecond early: shorter sleeps
		// overshoot, and the schedule catches up by sending what is due.
		// A request sent late carries its delay as lag.
		if d := at - time.Since(start); d > time.Millisecond {
			time.Sleep(d)
		}
		ci := pickClass(rng, l.cfg.Classes)
		measured := at >= warmup
		done := countDone
		if measured {
			done = recordDone
		}
		wg.Add(1)
		if !l.submit(ci, start.Add(at), done) {
			wg.Done()
			if measured {
				record(sample{class: uint8(ci), kind: failed, notSent: true})
			}
		}
	}
	wg.Wait()
	return samples
}

// closedLoop runs workers that each send requests of class ci back to back
// on their own connection for dur and returns the successes per second
// after the first fifth of dur.
func (l *load) closedLoop(ctx context.Context, workers int, dur time.Duration, ci int) float64 {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		count    int
		start    = time.Now()
		from, to = start.Add(dur / 5), start.Add(dur)
	)
	for range workers {
		wg.Go(func() {
			c := &conn{l: l}
			defer c.reset()
			for ctx.Err() == nil && time.Now().Before(to) {
				t0 := time.Now()
				status, err := c.roundTrip(ci)
				end := time.Now()
				if err == nil && l.classify(status, end.Sub(t0)) == succeeded && end.After(from) && end.Before(to) {
					mu.Lock()
					count++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return float64(count) / to.Sub(from).Seconds()
}

func pickClass(rng *rand.Rand, classes []Class) int {
	u := rng.Float64()
	for i, c := range classes {
		if u < c.Share {
			return i
		}
		u -= c.Share
	}
	return len(classes) - 1
}
