package features_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
)

func taskProgress(t *testing.T, e *env) (done, total int64) {
	t.Helper()
	if err := e.pool.QueryRow(context.Background(), `SELECT coalesce(sum(done_events), 0), coalesce(sum(total_events), 0)
		FROM feature_task_parts WHERE tenant_id = 'acme'`).Scan(&done, &total); err != nil {
		t.Fatal(err)
	}
	return done, total
}

// TestOnCallRehearsal plays the incident: a backfill and a recompute run
// at their default rates on two processes while live events flow; the
// surge preset stops both within a second on every process while the
// live path keeps applying events; revert resumes them; they finish and
// verify agrees with the brute force.
func TestOnCallRehearsal(t *testing.T) {
	t.Parallel()
	// A chunk of 2 events at 10 chunks/s per partition: 160 events/s per
	// task, so 1,000 events of history take seconds.
	cfg := features.Config{ChunkEvents: 2, TaskWorkers: 8} // 16 partitions: both processes get some
	e := newEnv(t, envOpts{cfg: cfg})
	second := e.addProcess(cfg)
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", countDef("existing"))
	eventually(t, 10*time.Second, func() string {
		if _, total := taskProgress(t, e); total != 0 {
			return ""
		}
		if d, _ := taskProgress(t, e); d != 0 {
			return "backfill of an empty history"
		}
		r := e.must(http.StatusOK, "acme", "GET", "/v1/features/definitions/existing", nil)
		if s := r.body["versions"].([]any)[0].(map[string]any)["state"]; s != "active" {
			return fmt.Sprint("state ", s)
		}
		return ""
	})
	now := time.Now()
	for b := range 10 {
		var evs []map[string]any
		for i := range 100 {
			n := b*100 + i
			evs = append(evs, ev(fmt.Sprint("h", n), now.Add(-time.Duration(n)*time.Second),
				map[string]any{"card": fmt.Sprint("c", n%7), "type": []string{"payment", "refund"}[n%2]}))
		}
		e.must(http.StatusAccepted, "acme", "POST", "/v1/events", map[string]any{"events": evs})
	}
	eventually(t, 20*time.Second, func() string {
		var n int
		_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM feature_events`).Scan(&n)
		if n != 1000 {
			return fmt.Sprint(n, " events applied")
		}
		return ""
	})
	// Backfill (new feature) and recompute (changed feature) start.
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", countDef("fresh"))
	changed := countDef("existing")
	changed["filter"] = `type == "payment"`
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", changed)
	eventually(t, 10*time.Second, func() string {
		if d, _ := taskProgress(t, e); d < 50 {
			return fmt.Sprint("tasks at ", d)
		}
		var owners int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(DISTINCT lease_owner) FROM feature_task_parts
			WHERE NOT done AND lease_owner <> ''`).Scan(&owners); err != nil || owners != 2 {
			return fmt.Sprintf("running task partitions leased by %d processes (%v), want both", owners, err)
		}
		return ""
	})
	// The rate gauge shows the running tasks' live rates, then 0 once paused
	// (the pause alert reads it next to the task lag): each process exports
	// the pairs its scan finds (not leased by the other), so read both.
	rateOf := func(task string) string {
		var vals []float64
		for _, reg := range []prometheus.Gatherer{e.reg, second.reg} {
			if r, ok := gatherSeries(t, reg, "bulwark_features_task_rate_per_partition")[task+"/acme"]; ok {
				vals = append(vals, r)
			}
		}
		if len(vals) == 0 {
			return "absent"
		}
		slices.Sort(vals)
		vals = slices.Compact(vals)
		return fmt.Sprint(vals)
	}
	eventually(t, 5*time.Second, func() string {
		if rateOf(control.TaskAggBackfill) != "[10]" || rateOf(control.TaskRecompute) != "[10]" {
			return "rate gauge while running: " + rateOf(control.TaskAggBackfill) + ", " + rateOf(control.TaskRecompute)
		}
		return ""
	})
	if _, err := e.ctl.ApplyPreset(context.Background(), "acme", "surge", control.Actor{KeyID: "oncall", Reason: "surge"}); err != nil {
		t.Fatal(err)
	}
	applied := time.Now()
	// Watch progress for 2 s: the last change must come within 1 s of the
	// preset (a chunk in flight may still commit).
	frozen, _ := taskProgress(t, e)
	lastChange := applied
	for time.Since(applied) < 2*time.Second {
		time.Sleep(20 * time.Millisecond)
		if d, _ := taskProgress(t, e); d != frozen {
			frozen, lastChange = d, time.Now()
		}
	}
	frozen, total := taskProgress(t, e) // a chunk in flight may have counted a partition's total
	if frozen >= total {
		t.Fatalf("tasks finished (%d/%d) before the surge preset could stop them: slow them down", frozen, total)
	}
	if took := lastChange.Sub(applied); took > time.Second {
		t.Fatalf("tasks progressed %v after the surge preset", took)
	}
	t.Logf("paused at %d/%d events; last progress %v after the preset", frozen, total, lastChange.Sub(applied))
	// What `bulwark features tasks` shows the operator: every partition of
	// both tasks paused, with its lag.
	rows, err := features.Tasks(context.Background(), e.pool, features.ControlRates(e.watcher.Current()), 2, 100, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var lag int64
	tasks := map[string]bool{}
	for _, r := range rows {
		if !r.Paused || r.ETA != -1 {
			t.Fatalf("task row not paused: %+v", r)
		}
		lag += r.LagEvents
		tasks[r.Task] = true
	}
	if !tasks[control.TaskAggBackfill] || !tasks[control.TaskRecompute] || lag == 0 || lag > total-frozen {
		t.Fatalf("task rows: %d rows, tasks %v, lag %d (done %d of %d)", len(rows), tasks, lag, frozen, total)
	}
	// The live path keeps going while tasks are paused.
	e.must(http.StatusAccepted, "acme", "POST", "/v1/events", ev("live", time.Now(), map[string]any{"card": "c0", "type": "payment"}))
	eventually(t, 10*time.Second, func() string {
		var n int
		_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM feature_events WHERE id = 'live'`).Scan(&n)
		if n != 1 {
			return "live event not applied during the surge"
		}
		return ""
	})
	time.Sleep(500 * time.Millisecond)
	if d, _ := taskProgress(t, e); d != frozen {
		t.Fatalf("tasks progressed from %d to %d while paused", frozen, d)
	}
	if second.paused.Load() == 0 {
		t.Fatal("the second process never saw the paused rate")
	}
	lagged := e.series("bulwark_features_task_lag_events")
	if len(lagged) == 0 {
		t.Fatal("no task lag series while tasks are paused")
	}
	eventually(t, 5*time.Second, func() string {
		if rateOf(control.TaskAggBackfill) != "[0]" || rateOf(control.TaskRecompute) != "[0]" {
			return "rate gauge while paused: " + rateOf(control.TaskAggBackfill) + ", " + rateOf(control.TaskRecompute)
		}
		return ""
	})
	if _, err := e.ctl.RevertPreset(context.Background(), "acme", "surge", control.Actor{KeyID: "oncall", Reason: "recovered"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		var open int
		_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM feature_versions WHERE state = 'building'`).Scan(&open)
		if open != 0 {
			d, tot := taskProgress(t, e)
			return fmt.Sprintf("%d versions building, %d/%d", open, d, tot)
		}
		return ""
	})
	e.verified(10*time.Second, time.Now())
	// Lag returned to 0: the task series are gone, the live path caught up.
	if s := e.series("bulwark_features_task_lag_events"); len(s) != 0 {
		t.Fatalf("task lag series after completion: %v", s)
	}
	eventually(t, 5*time.Second, func() string {
		if a, b := rateOf(control.TaskAggBackfill), rateOf(control.TaskRecompute); a != "absent" || b != "absent" {
			return fmt.Sprint("rate series after completion: ", a, ", ", b)
		}
		return ""
	})
	for k, v := range e.series("bulwark_features_consumer_lag_records") {
		if v != 0 {
			t.Fatalf("consumer lag %s = %v", k, v)
		}
	}
	if late := e.series("bulwark_features_events_late_total"); late[""] != 0 {
		t.Fatalf("late events: %v", late)
	}
}

// rates counts paused waits of a second process's limiter.
type countingRates struct {
	ratelimit.Rates
	paused *atomic.Int64
}

func (c countingRates) Rate(tenant, task string) (float64, <-chan struct{}, bool) {
	r, ch, ok := c.Rates.Rate(tenant, task)
	if ok && r == 0 {
		c.paused.Add(1)
	}
	return r, ch, ok
}

type process struct {
	paused atomic.Int64
	reg    *prometheus.Registry
}

// addProcess runs a second engine (its own settings watcher, limiter,
// worker and tasks) on the same database and broker.
func (e *env) addProcess(cfg features.Config) *process {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := control.NewWatcher(e.pool, control.NewRegistry(), nil, nil, control.WithPollInterval(200*time.Millisecond))
	if err := w.Sync(ctx); err != nil {
		e.t.Fatal(err)
	}
	p := &process{reg: prometheus.NewRegistry()}
	cfg.Registerer = p.reg
	cfg.Brokers, cfg.LedgerTopic, cfg.TaskPoll = e.brokers, "-", 100*time.Millisecond
	cfg.Owner = "second"
	eng, err := features.New(e.pool, w, ratelimit.New(countingRates{ratelimit.FromControl(w), &p.paused}), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{}, 3)
	for _, fn := range []func(context.Context) error{w.Run, eng.RunWorker, eng.RunTasks} {
		go func() { _ = fn(ctx); done <- struct{}{} }()
	}
	e.t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
		eng.Close()
	})
	return p
}

// TestPausedTenantHoldsNoWorker: a tenant whose backfill is paused does
// not hold the task workers another tenant's backfill needs.
func TestPausedTenantHoldsNoWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{cfg: features.Config{TaskWorkers: features.TaskPartitions}})
	e.set("acme", control.TaskRateKey(control.TaskAggBackfill), "0")
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", countDef("a"))
	time.Sleep(500 * time.Millisecond) // acme's partitions are scanned (and would take every worker)
	e.must(http.StatusCreated, "globex", "POST", "/v1/features/definitions", countDef("g"))
	state := func(tn, name string) string {
		r := e.must(http.StatusOK, tn, "GET", "/v1/features/definitions/"+name, nil)
		return fmt.Sprint(r.body["versions"].([]any)[0].(map[string]any)["state"])
	}
	eventually(t, 15*time.Second, func() string {
		if s := state("globex", "g"); s != "active" {
			return "globex's backfill: " + s
		}
		return ""
	})
	if s := state("acme", "a"); s != "building" {
		t.Fatalf("acme's paused backfill: %s", s)
	}
	e.set("acme", control.TaskRateKey(control.TaskAggBackfill), "10")
	eventually(t, 15*time.Second, func() string {
		if s := state("acme", "a"); s != "active" {
			return "acme's backfill after resuming: " + s
		}
		return ""
	})
}

// TestTaskChunksYieldToTheLivePath: a backfill chunk that needs tile rows
// another transaction holds (as a live batch does while it writes) gives
// up after its lock timeout instead of waiting (a chunk waiting on the
// live path could deadlock with it across the live path's passes, which
// PostgreSQL breaks only after a second), counts it, and completes once
// the rows are free.
func TestTaskChunksYieldToTheLivePath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envOpts{cfg: features.Config{ChunkEvents: 5}})
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", countDef("card_count"))
	active := func(name string) func() string {
		return func() string {
			r := e.must(http.StatusOK, "acme", "GET", "/v1/features/definitions/"+name, nil)
			if s := r.body["versions"].([]any)[0].(map[string]any)["state"]; s != "active" {
				return fmt.Sprint(name, " state ", s)
			}
			return ""
		}
	}
	eventually(t, 10*time.Second, active("card_count"))
	now := time.Now()
	var evs []map[string]any
	for i := range 20 {
		evs = append(evs, ev(fmt.Sprint("y", i), now.Add(-time.Duration(i)*time.Second), map[string]any{"card": "c1", "amount": i + 1}))
	}
	e.must(http.StatusAccepted, "acme", "POST", "/v1/events", map[string]any{"events": evs})
	eventually(t, 20*time.Second, func() string {
		r := e.must(http.StatusOK, "acme", "GET", "/v1/features/card/c1", nil)
		if v := r.body["features"].(map[string]any)["card_count"].(map[string]any)["values"].(map[string]any)["1h"]; v != 20.0 {
			return fmt.Sprint("c1 count ", v)
		}
		return ""
	})

	// A connection of its own to watch lock waits: chunks that wait hold
	// theirs, and could take the pool's last ones.
	mon, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Release()
	// Hold c1's tile rows, then define a feature whose backfill must write them.
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM feature_tiles WHERE tenant_id = 'acme' AND entity = 'c1' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", map[string]any{"name": "card_sum",
		"source": "events", "entity": "card", "aggregation": "sum", "field": "amount", "windows": []string{"1h"}})
	var longest float64 // seconds: the longest lock wait seen
	sample := func() {
		var w float64
		if err := mon.QueryRow(ctx, `SELECT coalesce(max(extract(epoch FROM clock_timestamp() - state_change)), 0)
			FROM pg_stat_activity WHERE wait_event_type = 'Lock'`).Scan(&w); err != nil {
			t.Fatal(err)
		}
		longest = max(longest, w)
	}
	eventually(t, 20*time.Second, func() string {
		sample()
		if n := e.series("bulwark_features_task_lock_timeouts_total")["agg_backfill"]; n < 2 {
			return fmt.Sprint("chunks that gave up a lock wait: ", n)
		}
		return ""
	})
	for range 20 { // a second more of the rows held
		sample()
		time.Sleep(50 * time.Millisecond)
	}
	if longest >= 1 {
		t.Fatalf("a lock wait of %.2f s while the rows were held: chunks do not yield", longest)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, active("card_sum"))
	r := e.must(http.StatusOK, "acme", "GET", "/v1/features/card/c1", nil)
	if v := r.body["features"].(map[string]any)["card_sum"].(map[string]any)["values"].(map[string]any)["1h"]; v != 210.0 {
		t.Fatalf("c1 sum after the backfill: %v, want 210", v)
	}
}
