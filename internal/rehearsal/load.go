package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
)

// generator offers open-loop load to a target.
type generator struct {
	cfg      *Config
	t        *target
	weights  []float64 // normalised shares of cfg.Mix
	rng      *rand.Rand
	inflight atomic.Int64
	seq      atomic.Uint64 // arrival number, picks the accounts
}

func newGenerator(cfg *Config, t *target) *generator {
	g := &generator{cfg: cfg, t: t, rng: rand.New(rand.NewPCG(cfg.Seed, 11))}
	sum := 0.0
	for _, sh := range cfg.Mix {
		sum += sh.Weight
	}
	for _, sh := range cfg.Mix {
		g.weights = append(g.weights, sh.Weight/sum)
	}
	return g
}

// stage offers rate arrivals a second for dur, evenly spaced whatever the
// answers, and returns the tallies once every request sent has ended (at
// most RequestTimeout after dur). label names the stage in the progress
// lines. A cancelled ctx stops the arrivals; the requests in flight end
// with it (counted as errors).
//
// lag is the most an arrival was sent after it was due: the generator's
// own delay (a starved CPU), not the server's.
func (g *generator) stage(ctx context.Context, label string, rate float64, dur time.Duration) (ts []tally, lag time.Duration) {
	c := newCounts(len(g.cfg.Mix))
	stop := make(chan struct{})
	var progress sync.WaitGroup
	if g.cfg.Progress != nil {
		progress.Go(func() { g.progress(g.cfg.Progress, label, rate, c, stop) })
	}
	var wg sync.WaitGroup
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
		} else {
			lag = max(lag, -d)
		}
		ci := g.pick()
		c.arrive(ci)
		if g.inflight.Add(1) > int64(g.cfg.MaxInFlight) {
			g.inflight.Add(-1)
			c.end(ci, dropped, "", 0)
			continue
		}
		wg.Go(func() {
			defer g.inflight.Add(-1)
			t0 := time.Now()
			o, code := g.send(ctx, ci)
			c.end(ci, o, code, time.Since(t0))
		})
	}
	wg.Wait()
	close(stop)
	progress.Wait()
	ts = c.snapshot()
	for i := range ts {
		ts[i].check(g.cfg.Mix[i].Class)
	}
	return ts, lag
}

func (g *generator) pick() int {
	u := g.rng.Float64()
	for i, w := range g.weights {
		if u < w {
			return i
		}
		u -= w
	}
	return len(g.weights) - 1
}

// send makes one request of class ci and classifies its answer.
func (g *generator) send(ctx context.Context, ci int) (outcome, string) {
	spec := classes[g.cfg.Mix[ci].Class]
	n := g.seq.Add(1)
	cs := g.t.load[spec.traffic]
	c := cs[n%uint64(len(cs))]
	acc := g.t.accounts
	src := acc[n%uint64(len(acc))]
	var err error
	switch spec.op {
	case opTransfer:
		dst := acc[(n+1)%uint64(len(acc))]
		_, err = c.Transfer(ctx, client.Tx{Postings: []client.Posting{{Source: src, Destination: dst, Amount: "1", Asset: accountAsset}}})
	case opRead:
		_, err = c.Account(ctx, src)
	case opFeatureRead:
		_, err = c.Features(ctx, client.EntityRef{Type: "card", ID: "card-" + strconv.FormatUint(n%loadCards, 10)})
	case opEvaluate:
		_, err = c.Evaluate(ctx, client.Event{ID: "load-" + strconv.FormatUint(n, 10), Time: time.Now().UTC(),
			Fields: map[string]any{"card": "card-" + strconv.FormatUint(n%loadCards, 10), "amount": 1}}, false)
	case opExport:
		// The entries of one account over the last hours: identical
		// requests while one runs return the same job, as a user clicking
		// twice would.
		from := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
		to := from.Add(3 * time.Hour)
		_, err = c.CreateExport(ctx, client.ExportRequest{Kind: "entries", AccountID: src, From: &from, To: &to, Format: "csv"})
	}
	return classify(err)
}

// classify maps a call's error to an outcome: a 429 or 503 answer is a
// rejection counted by its problem code; anything else that is not a
// success is an error.
func classify(err error) (outcome, string) {
	if err == nil {
		return achieved, ""
	}
	var e *client.Error
	if errors.As(err, &e) && (e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable) {
		if e.Code == "" {
			return rejected, "http_" + strconv.Itoa(e.Status)
		}
		return rejected, e.Code
	}
	return failed, ""
}

// progress prints a line a second until stop: offered and achieved rate
// over the last second, p99 per class so far, and the stage's errors.
func (g *generator) progress(w io.Writer, label string, rate float64, c *counts, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prevOffered, prevAchieved int64
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		ts := c.snapshot()
		var offered, achieved, rej, drop, errs int64
		var p99s []string
		for i, t := range ts {
			offered += t.offered
			achieved += t.achieved
			rej += t.rejectedTotal()
			drop += t.dropped
			errs += t.errors
			p99s = append(p99s, fmt.Sprintf("%s %s", g.cfg.Mix[i].Class, ms(t.percentile(0.99))))
		}
		fmt.Fprintf(w, "%s @ %.0f/s: offered %d/s achieved %d/s | p99 %s | rejected %d dropped %d errors %d\n",
			label, rate, offered-prevOffered, achieved-prevAchieved, strings.Join(p99s, ", "), rej, drop, errs)
		prevOffered, prevAchieved = offered, achieved
	}
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + "ms" }
