package server_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/pgserver"
)

// featureFeeder sends tenant events to a whole `bulwark serve` that is
// SIGKILLed between rounds, and remembers every id it sent: after each
// restart it sends all of them again (acknowledged or not), so the engine
// must count each id once whatever the kills did to the batches in flight.
type featureFeeder struct {
	c    *client
	mu   sync.Mutex
	sent []string // every event id sent, in order
}

// defineCrashFeatures defines a ledger-source feature (the relay's entries
// topic) and a tenant-events feature on the tenant of c.
func defineCrashFeatures(t *testing.T, c *client) {
	t.Helper()
	for _, def := range []map[string]any{
		{"name": "acct_amount", "source": "ledger", "entity": "account", "aggregation": "sum", "field": "amount", "windows": []string{"1d"}},
		{"name": "card_count", "source": "events", "entity": "card", "aggregation": "count", "windows": []string{"1h"}},
	} {
		if r := c.do(t, "POST", "/v1/features/definitions", def); r.status != 201 {
			t.Fatalf("define %s: %d %s", def["name"], r.status, r.raw)
		}
	}
}

// run sends batches of 20 events until ctx ends.
func (f *featureFeeder) run(ctx context.Context, round int) {
	for b := 0; ctx.Err() == nil; b++ {
		ids := make([]string, 20)
		for i := range ids {
			ids[i] = fmt.Sprintf("r%d-b%d-%d", round, b, i)
		}
		f.mu.Lock()
		f.sent = append(f.sent, ids...)
		f.mu.Unlock()
		_, _ = f.c.try("POST", "/v1/events", f.body(ids))
	}
}

func (f *featureFeeder) body(ids []string) map[string]any {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	evs := make([]map[string]any, len(ids))
	for i, id := range ids {
		evs[i] = map[string]any{"id": id, "time": now, "fields": map[string]any{"card": fmt.Sprintf("c%d", i%7)}}
	}
	return map[string]any{"events": evs}
}

// resend sends every id again until each batch is accepted (202).
func (f *featureFeeder) resend(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	ids := append([]string(nil), f.sent...)
	f.mu.Unlock()
	for len(ids) > 0 {
		n := min(len(ids), 500)
		for attempt := 0; ; attempt++ {
			r, err := f.c.try("POST", "/v1/events", f.body(ids[:n]))
			if err == nil && r.status == 202 {
				break
			}
			if attempt > 100 {
				t.Fatalf("events never accepted: %v %d %s", err, r.status, r.raw)
			}
			time.Sleep(100 * time.Millisecond)
		}
		ids = ids[n:]
	}
}

// checkFeatures waits until both features are built (the ledger one is
// backfilled a few seconds after its definition) and `bulwark features
// verify` (a separate process recomputing every feature by brute force from
// the entries table and the event log) agrees with the engine, and checks
// that the event log holds every id sent exactly once.
func (f *featureFeeder) checkFeatures(t *testing.T, bin, dir string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var out []byte
	var err error
	for {
		out, err = exec.Command(bin, "features", "verify", "--data-dir", dir).CombinedOutput()
		if err == nil && strings.Contains(string(out), "(0 still building") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("features verify after the kills: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
	}
	t.Logf("features: %s", strings.TrimSpace(string(out)))
	ctx := context.Background()
	pc, err := pgserver.Start(ctx, pgserver.Config{Dir: filepath.Join(dir, "postgres")})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pc.URL("bulwark"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	f.mu.Lock()
	want := map[string]bool{}
	for _, id := range f.sent {
		want[id] = true
	}
	f.mu.Unlock()
	var rows, distinct int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM feature_events WHERE tenant_id = 'acme'`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != len(want) || distinct != len(want) {
		t.Fatalf("event log holds %d rows (%d distinct ids); %d ids were sent", rows, distinct, len(want))
	}
	if !strings.Contains(string(out), ": 0 mismatches") || !strings.Contains(string(out), "2 features") {
		t.Fatalf("verify output: %s", out)
	}
}
