package edge

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/export"
	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

//go:embed openapi.yaml
var openapi []byte

// Routes are the domain APIs the front door serves; nil ones are left out.
type Routes struct {
	Tenants *tenant.Store // authentication and the tenant admin routes (required)
	Ledger  *ledger.API
	Control *control.API
	// Features serves feature definitions, events, reads and evaluate.
	Features *features.API
	Exports  *export.API
}

// Ops returns the endpoints every process serves whatever its roles:
// /metrics of reg, /healthz (the process runs), /readyz (ready answers
// nil: the database is reachable) and /openapi.yaml.
func Ops(reg *prometheus.Registry, ready func(context.Context) error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			problem.Send(w, problem.CodeNotReady, "database unreachable")
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openapi)
	})
	return mux
}

// Handler is the front door: ops's endpoints, and every other path through
// authentication → admission → routes, all instrumented into reg.
func (e *Edge) Handler(ops *http.ServeMux, routes Routes, reg prometheus.Registerer) http.Handler {
	app := http.NewServeMux()
	routes.Tenants.Register(app)
	if routes.Ledger != nil {
		routes.Ledger.Register(app)
	}
	if routes.Control != nil {
		routes.Control.Register(app)
	}
	if routes.Features != nil {
		routes.Features.Register(app)
	}
	if routes.Exports != nil {
		routes.Exports.Register(app)
	}
	app.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Send(w, problem.CodeNotFound, "no route "+r.Method+" "+r.URL.Path)
	})
	// auth → admission → routes: admission needs the principal, and shed
	// requests never reach a handler. The route pattern is captured first,
	// so that a request refused by auth or shed by admission is counted
	// under its route (the payments availability objective counts shed
	// payments), not under "/".
	ops.Handle("/", capturePattern(app, routes.Tenants.Middleware(e.ctl.Middleware(e.classify, app))))
	return Instrument(reg, e.log, ops)
}

// Instrument counts requests by route pattern and status, times them, and
// turns a handler's panic into a 500 problem.
func Instrument(reg prometheus.Registerer, log *slog.Logger, next http.Handler) http.Handler {
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_http_requests_total",
		Help: "HTTP requests by method, route pattern and status."}, []string{"method", "route", "status"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bulwark_http_request_seconds",
		Help: "HTTP request latency by route pattern.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route"})
	inflight := prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_http_in_flight", Help: "HTTP requests in flight."})
	reg.MustRegister(reqs, dur, inflight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		inflight.Inc()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		var pattern string
		r = r.WithContext(context.WithValue(r.Context(), patternKey{}, &pattern))
		defer func() {
			inflight.Dec()
			if v := recover(); v != nil {
				log.Error("panic in handler", "panic", v, "path", r.URL.Path)
				if !sw.wrote {
					problem.Send(sw, problem.CodeInternal, "internal error")
				}
			}
			route := pattern
			if route == "" {
				route = r.Pattern
			}
			if route == "" {
				route = "other"
			}
			reqs.WithLabelValues(r.Method, route, strconv.Itoa(sw.status)).Inc()
			dur.WithLabelValues(route).Observe(time.Since(start).Seconds())
			traceRequest(r, route, sw.status)
		}()
		next.ServeHTTP(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (downloads
// extend their write deadline).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

type patternKey struct{}

// capturePattern records the pattern mux would match for instrument, then
// calls next (which ends in mux). The lookup is pure: it does not run the
// route's handler.
func capturePattern(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := r.Context().Value(patternKey{}).(*string); ok {
			_, *p = mux.Handler(r)
		}
		next.ServeHTTP(w, r)
	})
}
