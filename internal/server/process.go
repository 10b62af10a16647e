package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bulwark-ledger/bulwark/internal/admission"
	"github.com/bulwark-ledger/bulwark/internal/console"
	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/edge"
	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

// A process is assembled from a table of roles (after Loki's module
// table): each role adds its components, and components start in the order
// they were added and stop in reverse, each drained before the one before
// it is stopped. Shared parts (the control plane, the commit pipeline, the
// HTTP server with /metrics, /healthz and /readyz) are added once, by the
// first role that needs them, so every process has them in a fixed order:
//
//	control plane → commit pipeline → workers → change stream → HTTP
//
// and shuts down HTTP first (drain in-flight requests), then the change
// stream (relay, then its broker), the workers, the pipeline (answers what
// is queued), the control plane, and last the pool and the embedded
// PostgreSQL.

// Roles.
const (
	RoleAPI     = "api"
	RoleWorkers = "workers"
	RoleCDC     = "cdc"
	RoleFeat    = "features"
	RoleExports = "exports"
)

// role is one entry of the role table.
type role struct {
	name string
	add  func(p *process) error
}

// roles is the role table, in the order roles are assembled.
var roles = []role{
	{RoleWorkers, (*process).addWorkers},
	{RoleExports, (*process).addExports},
	{RoleCDC, (*process).addCDC},
	{RoleFeat, (*process).addFeatures},
	{RoleAPI, (*process).addAPI},
}

func roleNames() []string {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = r.name
	}
	return names
}

// component is one long-lived part of a process.
type component struct {
	name string
	// run runs until ctx ends, then returns nil; an earlier error is
	// logged, and ends the process if critical.
	run      func(ctx context.Context) error
	critical bool
	// close, if set, releases what the component holds after run returned.
	close func()
}

// process is one process being assembled and run.
type process struct {
	cfg  Config
	log  *slog.Logger
	reg  *prometheus.Registry
	pool *pgxpool.Pool
	url  string

	creg    *control.Registry
	watcher *control.Watcher
	pipe    *ledger.Pipeline
	journal *ledger.Journal
	kafka   lazyBroker
	feat    *features.Engine

	rl *ratelimit.Limiter // shared by the features tasks and huge exports

	comps []component
}

func (p *process) add(c component) { p.comps = append(p.comps, c) }

// Run runs the process until ctx ends, then shuts down in order.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.ensureDefaults(); err != nil {
		return err
	}
	pool, url, stopPG, err := openStorage(ctx, &cfg)
	if err != nil {
		return err
	}
	defer stopPG()
	defer pool.Close()
	if cfg.AdminKey == "" {
		if cfg.AdminKey, err = loadAdminKey(cfg.DataDir); err != nil {
			return err
		}
	}
	p := &process{cfg: cfg, log: cfg.Logger, reg: prometheus.NewRegistry(), pool: pool, url: url}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ran := false
	defer func() {
		if ran {
			return
		}
		for i := len(p.comps) - 1; i >= 0; i-- {
			if c := p.comps[i]; c.close != nil {
				c.close() // assembled, never started: assembly failed
			}
		}
	}()
	if err := p.addControl(ctx); err != nil {
		return err
	}
	p.addBroker()
	for _, r := range roles {
		if cfg.has(r.name) {
			if err := r.add(p); err != nil {
				return fmt.Errorf("role %s: %w", r.name, err)
			}
		}
	}
	if !cfg.has(RoleAPI) {
		ops := edge.Ops(p.reg, pool.Ping)
		ops.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			problem.Send(w, problem.CodeNotFound, "this process does not run the api role (roles: "+strings.Join(cfg.Roles, ",")+")")
		})
		p.addHTTP(edge.Instrument(p.reg, p.log, ops))
	}
	if cfg.DebugAddr != "" {
		// Bound here, before the process reports ready, so that profiles
		// can be taken as soon as it is (a listener started with the
		// components raced the first request).
		if ln, err := net.Listen("tcp", cfg.DebugAddr); err != nil {
			p.log.Warn("profiles not served", "addr", cfg.DebugAddr, "err", err)
		} else {
			p.add(component{name: "debug", run: func(ctx context.Context) error { return serveDebug(ctx, p.cfg, ln) },
				close: func() { _ = ln.Close() }})
		}
	}
	ran = true
	return p.run(ctx)
}

// serveDebug serves net/http/pprof on ln (bound to cfg.DebugAddr) until
// ctx ends. It is not critical: a profile listener that cannot start is
// logged, and the process serves on.
func serveDebug(ctx context.Context, cfg Config, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or trace streams for its duration.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	cfg.Logger.Info("serving profiles", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("debug http: %w", err)
	case <-ctx.Done():
	}
	return srv.Close()
}

// run starts every component in order, waits until ctx ends or a critical
// one fails, then stops them in reverse order.
func (p *process) run(ctx context.Context) error {
	type running struct {
		cancel context.CancelFunc
		done   chan error
	}
	started := make([]running, len(p.comps))
	failed := make(chan error, len(p.comps))
	for i, c := range p.comps {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan error, 1)
		started[i] = running{cancel, done}
		go func() {
			err := c.run(cctx)
			if err != nil && cctx.Err() == nil {
				if c.critical {
					failed <- fmt.Errorf("%s: %w", c.name, err)
				} else {
					p.log.Error(c.name+" stopped; the process keeps serving", "err", err)
				}
			}
			done <- err
		}()
	}
	p.log.Info("running", "roles", strings.Join(p.cfg.Roles, ","))
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-failed:
	}
	for i := len(p.comps) - 1; i >= 0; i-- {
		started[i].cancel()
		if err := <-started[i].done; err != nil && p.comps[i].critical && !errors.Is(err, context.Canceled) {
			runErr = errors.Join(runErr, err)
		}
		if p.comps[i].close != nil {
			p.comps[i].close()
		}
	}
	p.log.Info("stopped")
	return runErr
}

// addControl adds the control plane, which every process runs: it applies
// tenant settings within a second of a change and keeps the last known
// good ones when the database is unreachable.
func (p *process) addControl(ctx context.Context) error {
	p.creg = control.NewRegistry()
	if err := p.creg.SetValidator(control.KeyAdmissionRules, func(text string) error {
		if strings.TrimSpace(text) == "" {
			return nil // empty means edge.DefaultRules
		}
		_, err := admission.ParseRules([]byte(text))
		return err
	}); err != nil {
		return err
	}
	p.watcher = control.NewWatcher(p.pool, p.creg, p.log, p.reg)
	if err := p.watcher.Sync(ctx); err != nil {
		p.log.Warn("control settings: serving defaults until the store answers", "err", err)
	}
	p.add(component{name: "control watcher", run: p.watcher.Run})
	return nil
}

// ledgerCore adds the commit pipeline and the journal once, for the roles
// that write (api, workers).
func (p *process) ledgerCore() {
	if p.pipe != nil {
		return
	}
	pc := p.cfg.Pipeline
	if pc.TracerProvider == nil {
		pc.TracerProvider = p.cfg.TracerProvider
	}
	p.pipe = ledger.NewPipeline(p.pool, pc, p.log, p.reg)
	p.journal = ledger.NewJournal(p.pool, p.pipe, p.log)
	// Close after everything that submits has stopped: it answers what is
	// queued, then stops the committers.
	p.add(component{name: "commit pipeline", run: waitDone, close: p.pipe.Close})
}

func waitDone(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// addWorkers adds the background workers: journal applier, pending
// expiry, partition maintenance. Each is independent: one failing does not
// stop the others.
func (p *process) addWorkers() error {
	p.ledgerCore()
	p.add(component{name: "journal applier", run: p.journal.Run})
	p.add(component{name: "pending expiry", run: ledger.NewExpirer(p.pool, p.pipe, p.log, 0).Run})
	p.add(component{name: "partition maintenance", run: ledger.NewPartitioner(p.pool, p.log).Run})
	return nil
}

// addCDC adds the change stream relay and, with no external Kafka, the
// embedded broker it writes to (closed after the relay has stopped).
func (p *process) addCDC() error {
	brokers, err := p.kafka.open(context.Background(), p.cfg)
	if err != nil {
		return err
	}
	r, err := newRelay(p.cfg, brokers, p.url, p.reg)
	if err != nil {
		return err
	}
	p.add(component{name: "cdc relay (see bulwark cdc status)", run: r.Run})
	return nil
}

// addAPI adds the HTTP front door: admission fed by the control plane,
// the ledger, tenant and control routes.
func (p *process) addAPI() error {
	p.ledgerCore()
	opts := []admission.Option{admission.WithRegisterer(p.reg)}
	if p.cfg.TracerProvider != nil {
		opts = append(opts, admission.WithTracerProvider(p.cfg.TracerProvider))
	}
	ctl, err := admission.New(p.cfg.Admission, opts...)
	if err != nil {
		return fmt.Errorf("admission: %w", err)
	}
	front := edge.New(ctl, p.log)
	if err := front.Apply(p.watcher.Current()); err != nil {
		return err
	}
	cancelOnChange := p.watcher.OnChange(func(s *control.Snapshot) {
		if err := front.Apply(s); err != nil {
			p.log.Error("apply settings to admission; previous values kept", "err", err)
		}
	})
	// Account reads: always fresh (a read after an acknowledged write sees
	// it), coalesced per account; the last value, up to a minute old, is
	// served marked stale only when a read is shed or the database fails.
	reads, err := admission.NewReads[ledger.Account](admission.ReadsConfig{Name: "accounts"},
		admission.WithRegisterer(p.reg))
	if err != nil {
		cancelOnChange()
		return err
	}
	exports, err := p.exportAPI()
	if err != nil {
		cancelOnChange()
		return err
	}
	api := &ledger.API{Store: ledger.NewStore(p.pool), Pipe: p.pipe, Journal: p.journal, Log: p.log,
		AccountReads: edge.AccountReads(reads)}
	feat, err := p.features()
	if err != nil {
		cancelOnChange()
		return err
	}
	tenants := tenant.NewStore(p.pool, p.cfg.AdminKey)
	ops := edge.Ops(p.reg, p.pool.Ping)
	var h http.Handler
	if err := p.mountConsole(ops, tenants, func() http.Handler { return h }); err != nil {
		cancelOnChange()
		return err
	}
	h = front.Handler(ops, edge.Routes{Tenants: tenants,
		Ledger: api, Control: control.NewAPI(control.NewStore(p.pool, p.creg), p.log), Features: feat.API(),
		Exports: exports}, p.reg)
	p.addHTTP(h)
	p.comps[len(p.comps)-1].close = cancelOnChange
	return nil
}

// mountConsole serves the operator console under /console on ops, outside
// the API key middleware (it authenticates by its own session). Its
// settings calls go through the front door that front returns once built.
func (p *process) mountConsole(ops *http.ServeMux, tenants *tenant.Store, front func() http.Handler) error {
	con, err := console.New(console.Config{
		Authenticate: tenants.Authenticate,
		API:          http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { front().ServeHTTP(w, r) }),
		Gatherer:     p.reg, Snapshot: p.watcher.Current, Registry: p.creg, Tenants: tenants.List,
		RouteClass: edge.RouteClass, Log: p.log,
	})
	if err != nil {
		return err
	}
	ops.Handle("/console/", con)
	ops.Handle("GET /console", http.RedirectHandler("/console/", http.StatusFound))
	return nil
}

// addHTTP adds the HTTP server, last: every process serves at least
// /metrics, /healthz and /readyz. It is critical: a listen error ends the
// process.
func (p *process) addHTTP(h http.Handler) {
	if p.cfg.TracerProvider != nil {
		h = edge.Trace(p.cfg.TracerProvider, h)
	}
	p.add(component{name: "http", critical: true, run: func(ctx context.Context) error { return serve(ctx, p.cfg, h) }})
}

func serve(ctx context.Context, cfg Config, h http.Handler) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	cfg.Logger.Info("serving", "addr", ln.Addr().String(), "roles", strings.Join(cfg.Roles, ","))
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("drain http: %w", err)
	}
	return nil
}
