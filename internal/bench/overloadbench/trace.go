package overloadbench

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// traceEnv names a file to which Run appends, every 100 ms, the
// controller's Stats and the generator's and server's counters: a record of
// what the controller saw during a run, for diagnosing a bad one.
const traceEnv = "BULWARK_OVERLOAD_TRACE"

type tracer struct {
	phase atomic.Pointer[string]
	stop  chan struct{}
	done  chan struct{}
}

func startTrace(srv *server, ld *load) *tracer {
	path := os.Getenv(traceEnv)
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil
	}
	t := &tracer{stop: make(chan struct{}), done: make(chan struct{})}
	p := "start"
	t.phase.Store(&p)
	go t.run(f, srv, ld)
	return t
}

func (t *tracer) setPhase(p string) {
	if t != nil {
		t.phase.Store(&p)
	}
}

func (t *tracer) close() {
	if t != nil {
		close(t.stop)
		<-t.done
	}
}

func (t *tracer) run(f io.WriteCloser, srv *server, ld *load) {
	defer close(t.done)
	defer f.Close()
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		st := srv.ctl.Stats()
		fmt.Fprintf(f, "%7.1f %-8s stage=%d limit=%d ctl_inflight=%d thr=%.2f base=%v qd=%v srv_inflight=%d gen_out=%d gen_skipped=%d dials=%d\n",
			time.Since(start).Seconds(), *t.phase.Load(), st.Stage, st.Limit, st.Inflight, st.Threshold,
			st.Baseline.Round(time.Millisecond), st.QueueDelay.Round(time.Millisecond), srv.inflight.Load(),
			ld.outstanding.Load(), ld.skipped.Load(), ld.dials.Load())
	}
}
