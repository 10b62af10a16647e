package control_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

// propagationBudget is the promise: every process applies a change
// within 1 s of its commit.
const propagationBudget = time.Second

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startWatcher runs a watcher on its own pool (standing in for a separate
// process) until the test ends, after a first Sync.
func startWatcher(t *testing.T, dbURL string, opts ...control.Option) (*control.Watcher, *prometheus.Registry) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	w := control.NewWatcher(pool, control.NewRegistry(), log, reg, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return w, reg
}

func newDBWithTenants(t *testing.T) (string, *control.Store) {
	t.Helper()
	dbURL := pgtest.NewDB(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(context.Background(), "INSERT INTO tenants (id) VALUES ('acme'), ('globex')"); err != nil {
		t.Fatal(err)
	}
	return dbURL, control.NewStore(pool, control.NewRegistry())
}

// waitFor polls cond every millisecond and returns how long it took to hold.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func TestPropagationToTwoWatchers(t *testing.T) {
	dbURL, s := newDBWithTenants(t)
	w1, reg1 := startWatcher(t, dbURL)
	w2, _ := startWatcher(t, dbURL)
	var seen atomic.Int64
	cancel := w2.OnChange(func(s *control.Snapshot) { seen.Store(s.Version()) })
	defer cancel()
	if got := w1.Float("acme", recompute); got != 10 {
		t.Fatalf("default recompute rate = %v, want 10", got)
	}
	var lat []time.Duration
	for i := range 10 {
		want := float64(i)
		start := time.Now()
		if _, err := s.Apply(context.Background(), "acme", []control.Change{set(recompute, fmt.Sprint(i))}, ops); err != nil {
			t.Fatal(err)
		}
		for _, w := range []*control.Watcher{w1, w2} {
			waitFor(t, propagationBudget, "propagation", func() bool { return w.Float("acme", recompute) == want })
			lat = append(lat, time.Since(start))
		}
		if w1.Float("globex", recompute) != 10 {
			t.Fatal("another tenant changed")
		}
	}
	if seen.Load() != 10 {
		t.Errorf("OnChange saw version %d, want 10", seen.Load())
	}
	slices.Sort(lat)
	t.Logf("propagation to 2 watchers over %d changes: p50 %v, max %v", len(lat)/2, lat[len(lat)/2], lat[len(lat)-1])
	if v := gauge(t, reg1, "bulwark_control_applied_version"); v != float64(w1.Version()) || v != 10 {
		t.Errorf("applied version metric = %v, watcher version %d, want 10", v, w1.Version())
	}
}

// TestMissedNotificationHealsByPoll commits a change without NOTIFY (as if
// the notification were lost) and expects both a listening watcher and a
// poll-only one to apply it within the budget.
func TestMissedNotificationHealsByPoll(t *testing.T) {
	dbURL, _ := newDBWithTenants(t)
	w1, _ := startWatcher(t, dbURL)
	w2, _ := startWatcher(t, dbURL, control.WithoutListen())
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	start := time.Now()
	_, err = conn.Exec(context.Background(), `WITH v AS (UPDATE control_version SET version = version + 1, changed_at = now() RETURNING version)
		INSERT INTO control_settings (tenant_id, key, value, version) SELECT 'acme', $1, '0', version FROM v`, recompute)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range []*control.Watcher{w1, w2} {
		waitFor(t, propagationBudget, "healing poll", func() bool { return w.Float("acme", recompute) == 0 })
		t.Logf("watcher %d healed after %v", i+1, time.Since(start))
	}
}

// TestLastKnownGoodWhenDatabaseGone drops the database under a running
// watcher: it keeps serving the settings it had and reports staleness.
func TestLastKnownGoodWhenDatabaseGone(t *testing.T) {
	dbURL, s := newDBWithTenants(t)
	w, reg := startWatcher(t, dbURL, control.WithMaxBackoff(time.Second))
	if _, err := s.Apply(context.Background(), "acme", []control.Change{set(recompute, "0"), set(control.KeyPriorityWeight, "90")}, ops); err != nil {
		t.Fatal(err)
	}
	waitFor(t, propagationBudget, "propagation", func() bool { return w.Float("acme", recompute) == 0 })
	version := w.Version()

	u, _ := url.Parse(dbURL)
	dropDatabase(t, strings.TrimPrefix(u.Path, "/"))
	d := waitFor(t, 10*time.Second, "store_up=0", func() bool { return gauge(t, reg, "bulwark_control_store_up") == 0 })
	t.Logf("outage noticed after %v", d)
	time.Sleep(1500 * time.Millisecond)
	if w.Float("acme", recompute) != 0 || w.Int("acme", control.KeyPriorityWeight) != 90 || w.Version() != version {
		t.Fatalf("lost last known good: recompute %v weight %v version %d (was %d)",
			w.Float("acme", recompute), w.Int("acme", control.KeyPriorityWeight), w.Version(), version)
	}
	if st := gauge(t, reg, "bulwark_control_staleness_seconds"); st < 1 {
		t.Errorf("staleness = %vs after the store vanished, want >= 1", st)
	}
}

// TestRecoversAfterConnectionsKilled terminates every connection of the
// watcher (listener included); the next change still arrives.
func TestRecoversAfterConnectionsKilled(t *testing.T) {
	dbURL, s := newDBWithTenants(t)
	w, _ := startWatcher(t, dbURL)
	u, _ := url.Parse(dbURL)
	admin, err := pgx.Connect(context.Background(), pgtest.ServerURL(t, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1`, strings.TrimPrefix(u.Path, "/")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for attempt := 0; ; attempt++ { // the store's own pool lost its connections too
		_, err := s.Apply(context.Background(), "acme", []control.Change{set(recompute, "3")}, ops)
		if err == nil {
			break
		}
		if attempt > 3 {
			t.Fatal(err)
		}
	}
	d := waitFor(t, 5*time.Second, "change after reconnect", func() bool { return w.Float("acme", recompute) == 3 })
	t.Logf("change applied %v after commit (%v after the kill)", d, time.Since(start))
}

func dropDatabase(t *testing.T, name string) {
	t.Helper()
	admin, err := pgx.Connect(context.Background(), pgtest.ServerURL(t, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
