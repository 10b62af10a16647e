package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/features/spec"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

// TestFeaturesTasksAndVerify: `features tasks` lists the partitions of a
// queued backfill with their rate, `verify` skips the building feature
// and exits 0, both against the database directly.
func TestFeaturesTasksAndVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDB(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "INSERT INTO tenants (id) VALUES ('acme')"); err != nil {
		t.Fatal(err)
	}
	w := control.NewWatcher(pool, control.NewRegistry(), nil, nil)
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	def, err := spec.DecodeDefinition([]byte(`{"name":"n","source":"events","entity":"card","aggregation":"count","windows":["1h"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := features.NewStore(pool, w).Define(ctx, "acme", def); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "features", "tasks", "--postgres", url, "--json")
	if err != nil {
		t.Fatalf("tasks: %v: %s", err, out)
	}
	var got struct{ Tasks []features.TaskRow }
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got.Tasks) != features.TaskPartitions {
		t.Fatalf("%d task rows, want %d: %s", len(got.Tasks), features.TaskPartitions, out)
	}
	for _, r := range got.Tasks {
		if r.Tenant != "acme" || r.Task != control.TaskAggBackfill || r.Rate != 10 || r.Paused {
			t.Fatalf("task row %+v", r)
		}
	}
	out, err = run(t, "features", "tasks", "--postgres", url)
	if err != nil || !strings.Contains(out, "agg_backfill") || !strings.Contains(out, "n v1") {
		t.Fatalf("tasks table: %v: %s", err, out)
	}
	out, err = run(t, "features", "verify", "--postgres", url)
	if err != nil || !strings.Contains(out, "1 still building") || !strings.Contains(out, "0 mismatches") {
		t.Fatalf("verify: %v: %s", err, out)
	}
}
