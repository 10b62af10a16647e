package ratelimit_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestFollowsControlPlane pauses recompute for one tenant through the
// control store and resumes it, with a worker blocked in Wait meanwhile.
func TestFollowsControlPlane(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	if _, err := pool.Exec(ctx, "INSERT INTO tenants (id) VALUES ('acme'), ('globex')"); err != nil {
		t.Fatal(err)
	}
	reg := control.NewRegistry()
	store := control.NewStore(pool, reg)
	w := control.NewWatcher(pool, reg, nil, nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = w.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	l := ratelimit.New(ratelimit.FromControl(w))
	rate := control.TaskRateKey(control.TaskRecompute)
	who := control.Actor{KeyID: "admin", Reason: "test"}
	if _, err := store.Apply(ctx, "acme", []control.Change{{Key: rate, Value: "0"}}, who); err != nil {
		t.Fatal(err)
	}
	for w.Float("acme", rate) != 0 {
		time.Sleep(time.Millisecond)
	}
	if l.Try(key) {
		t.Fatal("Try succeeded while paused")
	}
	if !l.Try(ratelimit.Key{Tenant: "globex", Task: "recompute"}) {
		t.Fatal("another tenant was paused")
	}
	waiting := waitAsync(ctx, l, key)
	select {
	case err := <-waiting:
		t.Fatalf("Wait returned %v while paused", err)
	case <-time.After(100 * time.Millisecond):
	}
	start := time.Now()
	if _, err := store.Apply(ctx, "acme", []control.Change{{Key: rate, Value: "50"}}, who); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waiting:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("paused worker resumed %v after the commit", time.Since(start))
	case <-time.After(generous):
		t.Fatal("worker still paused after the rate rose")
	}
}
