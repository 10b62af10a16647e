package features_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// env is one engine on a fresh database and an in-process Kafka broker,
// with its worker and tasks running and its API behind a test server
// (the tenant comes from the X-Test-Tenant header).
type env struct {
	t       *testing.T
	pool    *pgxpool.Pool
	brokers []string
	ctl     *control.Store
	watcher *control.Watcher
	eng     *features.Engine
	srv     *httptest.Server
	reg     *prometheus.Registry
}

type envOpts struct {
	cfg       features.Config
	noWorkers bool
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pool := pgtest.Pool(t)
	if _, err := pool.Exec(ctx, "INSERT INTO tenants (id) VALUES ('acme'), ('globex')"); err != nil {
		t.Fatal(err)
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	reg := control.NewRegistry()
	w := control.NewWatcher(pool, reg, nil, nil, control.WithPollInterval(200*time.Millisecond))
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := o.cfg
	promReg := prometheus.NewRegistry()
	cfg.Registerer = promReg
	cfg.Brokers = kc.ListenAddrs()
	cfg.LedgerTopic = "-"
	if os.Getenv("FEAT_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.TaskPoll == 0 {
		cfg.TaskPoll = 100 * time.Millisecond
	}
	eng, err := features.New(pool, w, ratelimit.New(ratelimit.FromControl(w)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pool: pool, brokers: kc.ListenAddrs(), ctl: control.NewStore(pool, reg), watcher: w, eng: eng, reg: promReg}
	var runs []chan struct{}
	run := func(fn func(context.Context) error) {
		done := make(chan struct{})
		runs = append(runs, done)
		go func() {
			defer close(done)
			if err := fn(ctx); err != nil {
				t.Errorf("run: %v", err)
			}
		}()
	}
	run(w.Run)
	if !o.noWorkers {
		run(eng.RunWorker)
		run(eng.RunTasks)
	}
	mux := http.NewServeMux()
	eng.API().Register(mux)
	e.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		p := tenant.Principal{TenantID: r.Header.Get("X-Test-Tenant"), KeyID: "k"}
		mux.ServeHTTP(rw, r.WithContext(tenant.WithPrincipal(r.Context(), p)))
	}))
	t.Cleanup(func() {
		e.srv.Close()
		cancel()
		for _, d := range runs {
			<-d
		}
		eng.Close()
		kc.Close()
	})
	return e
}

type resp struct {
	status int
	body   map[string]any
	raw    string
}

func (e *env) do(tn, method, path string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("X-Test-Tenant", tn)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// must is do that fails the test unless the status is want.
func (e *env) must(want int, tn, method, path string, body any) resp {
	e.t.Helper()
	r := e.do(tn, method, path, body)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.raw)
	}
	return r
}

// set applies a setting change through the control store and waits until
// the watcher sees it.
func (e *env) set(tn, key, value string) {
	e.t.Helper()
	v0 := e.watcher.Version()
	if _, err := e.ctl.Apply(context.Background(), tn, []control.Change{{Key: key, Value: value}},
		control.Actor{KeyID: "test", Reason: "test"}); err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, 5*time.Second, func() string {
		if e.watcher.Version() == v0 {
			return "setting " + key + " not seen"
		}
		return ""
	})
}

// eventually polls cond until it returns "" or the deadline passes.
func eventually(t *testing.T, d time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// verified waits until Verify at a fixed time reports no mismatch and
// every feature active.
func (e *env) verified(d time.Duration, now time.Time) features.Report {
	e.t.Helper()
	var rep features.Report
	eventually(e.t, d, func() string {
		var err error
		rep, err = e.eng.Verify(context.Background(), now)
		switch {
		case err != nil:
			return err.Error()
		case rep.Skipped > 0:
			return "features still building"
		case len(rep.Mismatches) > 0:
			b, _ := json.Marshal(rep.Mismatches)
			return "mismatches: " + string(b)
		}
		return ""
	})
	return rep
}

func ev(id string, at time.Time, fields map[string]any) map[string]any {
	return map[string]any{"id": id, "time": at.UTC().Format(time.RFC3339Nano), "fields": fields}
}

func featuresConfigChunk(n int) features.Config { return features.Config{ChunkEvents: n} }

// series returns the values of metric name by their label values joined
// with "/" (in label-name order).
func (e *env) series(name string) map[string]float64 {
	e.t.Helper()
	return gatherSeries(e.t, e.reg, name)
}

// gatherSeries returns the values of name's series in reg, keyed by their
// label values joined by "/".
func gatherSeries(t *testing.T, reg prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var key []string
			for _, l := range m.GetLabel() {
				key = append(key, l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[strings.Join(key, "/")] = v
		}
	}
	return out
}
