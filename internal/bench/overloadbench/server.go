package overloadbench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/admission"
)

// server is the system under test: a backend of fixed capacity, behind the
// admission middleware when admission is on, behind a per-request deadline
// always. It listens on loopback only.
type server struct {
	cfg       Config
	ctl       *admission.Controller
	on        atomic.Bool  // admission control on
	inflight  atomic.Int64 // requests inside the deadline handler
	slots     chan struct{}
	srv       *http.Server
	addr      string
	serveDone chan error

	rejMu   sync.Mutex
	rejects []time.Duration // guarded by rejMu; server-side time of 429/503 answers
}

func startServer(cfg Config, ctl *admission.Controller) (*server, error) {
	s := &server{cfg: cfg, ctl: ctl, slots: make(chan struct{}, cfg.BackendConcurrency), serveDone: make(chan error, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.addr = ln.Addr().String()
	backend := http.HandlerFunc(s.backend)
	admitted := ctl.Middleware(classify, backend)
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.inflight.Add(1)
			defer s.inflight.Add(-1)
			ctx, cancel := context.WithTimeout(r.Context(), cfg.RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
			if s.on.Load() {
				t0 := time.Now()
				rw := &statusWriter{ResponseWriter: w}
				admitted.ServeHTTP(rw, r)
				if rw.status == 503 || rw.status == 429 {
					s.recordReject(time.Since(t0))
				}
				return
			}
			backend.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
	}
	go func() { s.serveDone <- s.srv.Serve(ln) }()
	return s, nil
}

// classify: every bench client is tenant "bench", entitled to claim the
// normal and crawler traffic types.
var benchEntitlements = admission.Entitlements{Traffic: []string{"normal", "crawler"}, DefaultTraffic: "normal"}

func classify(r *http.Request) admission.Request {
	return admission.Request{
		Tenant:   "bench",
		Route:    strings.TrimPrefix(r.URL.Path, "/"),
		Traffic:  r.Header.Get(admission.TrafficHeader),
		Entitled: benchEntitlements,
	}
}

// backend waits for one of BackendConcurrency slots (FIFO: Go wakes
// channel senders in order) and holds it for ServiceTime. It stops
// waiting when the request's deadline passes and answers 504.
func (s *server) backend(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		w.WriteHeader(http.StatusGatewayTimeout)
		return
	}
	defer func() { <-s.slots }()
	t := time.NewTimer(s.cfg.ServiceTime)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		w.WriteHeader(http.StatusGatewayTimeout)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"ok":true}` + "\n"))
}

// settle waits until no request is inside the server, at most max.
func (s *server) settle(max time.Duration) {
	deadline := time.Now().Add(max)
	for s.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.serveDone; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (s *server) recordReject(d time.Duration) {
	s.rejMu.Lock()
	if len(s.rejects) < maxPhaseRequests {
		s.rejects = append(s.rejects, d)
	}
	s.rejMu.Unlock()
}

// takeRejects returns the server-side times of the rejections since the
// last call.
func (s *server) takeRejects() []time.Duration {
	s.rejMu.Lock()
	defer s.rejMu.Unlock()
	r := s.rejects
	s.rejects = nil
	return r
}
