package overloadbench

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestLoadReusesConnections: the generator sends every request on a
// keep-alive connection of its pool, one worker per connection, so a fast
// server sees a handful of connections however many requests are offered,
// and a rejection comes back as rejected, not failed.
func TestLoadReusesConnections(t *testing.T) {
	var conns int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reads" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns++ // ConnState runs on the accept goroutine for StateNew
		}
	}
	srv.Start()
	defer srv.Close()

	cfg := Config{Quick: true}.withDefaults()
	ld := newLoad(cfg, srv.Listener.Addr().String())
	samples := ld.openLoop(context.Background(), 1000, 500*time.Millisecond, 0, 1)
	ld.close()
	if len(samples) != 500 {
		t.Fatalf("%d samples, want 500", len(samples))
	}
	ok, rej := 0, 0
	for _, s := range samples {
		switch {
		case s.notSent || s.kind == failed:
			t.Fatalf("sample %+v: want sent and answered", s)
		case s.kind == succeeded && s.class == 0:
			ok++
		case s.kind == rejected && s.class != 0:
			rej++
		}
	}
	if ok+rej != len(samples) {
		t.Errorf("%d successes + %d rejections of %d samples: want payments 200, reads 503", ok, rej, len(samples))
	}
	if d := ld.dials.Load(); d > 50 || int64(conns) != d {
		t.Errorf("%d dials, %d server connections for 500 requests at 1,000/s: want few, and equal", d, conns)
	}
}

// TestGeneratorBehind: a phase whose requests left the generator late
// while connections were free is marked, and a miss at the top load factor
// is then inconclusive instead of the server's.
func TestGeneratorBehind(t *testing.T) {
	cfg := Config{LoadFactors: []float64{10}}.withDefaults()
	mk := func(lag time.Duration) []sample {
		var s []sample
		for i := range 1000 {
			s = append(s, sample{class: uint8(i % 3), kind: rejected, latency: time.Millisecond, lag: lag})
		}
		return s
	}
	for _, tc := range []struct {
		lag    time.Duration
		behind bool
	}{{time.Millisecond, false}, {50 * time.Millisecond, true}} {
		rep := &Report{CapacityPerSec: 100, UnloadedP99Ms: map[string]float64{allClasses: 40}}
		rep.addPhase(cfg, "on", 10, 1000, mk(tc.lag))
		rep.addPhase(cfg, "off", 10, 1000, mk(0))
		rep.evaluate(cfg)
		tot := rep.total("on", 10)
		if tot.GeneratorBehind != tc.behind || tot.RejectClientP99Ms != 1 {
			t.Errorf("lag %v: %+v, want behind %v and client reject p99 1 ms", tc.lag, tot, tc.behind)
		}
		for _, c := range rep.Checks {
			if c.Inconclusive != (tc.behind && !c.Pass) {
				t.Errorf("lag %v: check %+v", tc.lag, c)
			}
		}
	}
}
