package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

// verifyFeatures runs the brute-force check on the database at url until
// it reports every feature active and no mismatch.
func verifyFeatures(t *testing.T, url string, within time.Duration) features.Report {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	w := control.NewWatcher(pool, control.NewRegistry(), nil, nil)
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	e, err := features.New(pool, w, nil, features.Config{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(within)
	for {
		rep, err := e.Verify(ctx, time.Now())
		if err == nil && rep.Skipped == 0 && len(rep.Mismatches) == 0 && rep.Features > 0 {
			return rep
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(rep)
			t.Fatalf("verify: %v %s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFeaturesLedgerSource: a feature over the ledger's own entries, fed
// by the change stream (transfers after its definition) and by backfill
// from the entries table (transfers before), agrees with the brute force.
func TestFeaturesLedgerSource(t *testing.T) {
	t.Parallel()
	admin, url := startServerWith(t, t.TempDir(), func(c *server.Config) {
		c.Features.LedgerSettle = 500 * time.Millisecond
		c.Features.TaskPoll = 100 * time.Millisecond
	}, server.RoleAPI, server.RoleWorkers, server.RoleCDC, server.RoleFeat)
	c := newTenant(t, admin, "acme")
	for _, id := range []string{"a", "b"} {
		c.do(t, "POST", "/v1/accounts", map[string]any{"id": id, "asset": "USD"})
	}
	transfer := func(key, src, dst, amt string) {
		if r := c.do(t, "POST", "/v1/transactions", transferBody(key, src, dst, amt)); r.status != 201 {
			t.Fatalf("transfer: %d %s", r.status, r.raw)
		}
	}
	transfer("t1", "a", "b", "100")
	for _, def := range []map[string]any{
		{"name": "paid_out", "source": "ledger", "entity": "account", "aggregation": "sum", "field": "amount",
			"windows": []string{"10m", "1h"}, "filter": `side == "debit"`},
		{"name": "postings", "source": "ledger", "entity": "account", "aggregation": "count", "windows": []string{"1h"}},
	} {
		if r := c.do(t, "POST", "/v1/features/definitions", def); r.status != 201 {
			t.Fatalf("define: %d %s", r.status, r.raw)
		}
	}
	transfer("t2", "a", "b", "250")
	transfer("t3", "b", "a", "340282366920938463463374607431768211455") // 2^128-1: exact
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := c.do(t, "GET", "/v1/features/account/a", nil)
		f, _ := r.body["features"].(map[string]any)
		paid, _ := f["paid_out"].(map[string]any)
		posts, _ := f["postings"].(map[string]any)
		if paid != nil && posts != nil && fmt.Sprint(paid["values"].(map[string]any)["1h"]) == "350" &&
			fmt.Sprint(posts["values"].(map[string]any)["1h"]) == "3" && paid["building"] == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("account a: %s", r.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rep := verifyFeatures(t, url, 20*time.Second)
	if rep.Features != 2 || rep.Entities != 4 {
		t.Fatalf("verify: %+v", rep)
	}
	m := admin.do(t, "GET", "/metrics", nil)
	for _, want := range []string{`bulwark_features_events_applied_total{source="ledger"}`, "bulwark_features_commit_seconds_bucket",
		`bulwark_features_consumer_lag_records{partition="0",topic="bulwark.cdc.public.entries"}`} {
		if !strings.Contains(string(m.raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
