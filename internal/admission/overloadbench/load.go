package overloadbench

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
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
	latency time.Duration // from sending to the end of the response
}

// load sends requests to the server and records their outcomes.
type load struct {
	cfg    Config
	base   string // http://127.0.0.1:port
	client *http.Client
}

func newLoad(cfg Config, addr string) *load {
	tr := &http.Transport{
		MaxIdleConns:        cfg.MaxConns,
		MaxIdleConnsPerHost: cfg.MaxConns,
		MaxConnsPerHost:     cfg.MaxConns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	l := &load{cfg: cfg, base: "http://" + addr}
	// The server answers every request by its deadline; the client timeout
	// is only a safety net.
	l.client = &http.Client{Transport: tr, Timeout: cfg.RequestTimeout + 2*time.Second}
	return l
}

func (l *load) close() { l.client.CloseIdleConnections() }

// do sends one request of class ci and classifies its outcome.
func (l *load) do(ctx context.Context, ci int) sample {
	cl := l.cfg.Classes[ci]
	s := sample{class: uint8(ci), kind: failed}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/"+cl.Route, nil)
	if err != nil {
		return s
	}
	if cl.Traffic != "" {
		req.Header.Set(admission.TrafficHeader, cl.Traffic)
	}
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		s.latency = time.Since(start)
		return s
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.latency = time.Since(start)
	switch {
	case resp.StatusCode/100 == 2 && s.latency <= l.cfg.RequestTimeout:
		s.kind = succeeded
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		s.kind = rejected
	}
	return s
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
		slots   = make(chan struct{}, l.cfg.MaxOutstanding)
	)
	record := func(s sample) {
		mu.Lock()
		if len(samples) < maxPhaseRequests {
			samples = append(samples, s)
		}
		mu.Unlock()
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; ctx.Err() == nil; i++ {
		at := time.Duration(i) * interval
		if at >= dur {
			break
		}
		// Sleep only when at least a millisecond early: shorter sleeps
		// overshoot, and the schedule catches up by sending what is due.
		if d := at - time.Since(start); d > time.Millisecond {
			time.Sleep(d)
		}
		ci := pickClass(rng, l.cfg.Classes)
		measured := at >= warmup
		select {
		case slots <- struct{}{}:
		default:
			if measured {
				record(sample{class: uint8(ci), kind: failed})
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s := l.do(ctx, ci)
			if measured {
				record(s)
			}
		}()
	}
	wg.Wait()
	return samples
}

// closedLoop runs workers that each send reads back to back for dur and
// returns the successes per second after the first fifth of dur.
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
			for ctx.Err() == nil && time.Now().Before(to) {
				s := l.do(ctx, ci)
				if end := time.Now(); s.kind == succeeded && end.After(from) && end.Before(to) {
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
