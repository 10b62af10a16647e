package control_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

var (
	recompute = control.TaskRateKey(control.TaskRecompute)
	backfill  = control.TaskRateKey(control.TaskAggBackfill)
)

// newStore returns a store on a fresh database holding tenants acme and globex.
func newStore(t *testing.T) (*control.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.Pool(t)
	if _, err := pool.Exec(context.Background(), "INSERT INTO tenants (id) VALUES ('acme'), ('globex')"); err != nil {
		t.Fatal(err)
	}
	return control.NewStore(pool, control.NewRegistry()), pool
}

func set(k, v string) control.Change { return control.Change{Key: k, Value: v} }
func unset(k string) control.Change  { return control.Change{Key: k, Unset: true} }

var ops = control.Actor{KeyID: "admin", Operator: "alice", Reason: "test"}

// settings returns tenant's effective values and their sources.
func settings(t *testing.T, s *control.Store, tenant string) map[string]string {
	t.Helper()
	ts, err := s.Settings(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, st := range ts.Settings {
		m[st.Key] = st.Value + "/" + st.Source
	}
	return m
}

func TestApplyAndAudit(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	r1, err := s.Apply(ctx, "acme", []control.Change{set(recompute, "0"), set(control.KeyQuotaBurst, " 30 ")},
		control.Actor{KeyID: "admin", Operator: "alice", Reason: "surge"})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Version != 1 || len(r1.Changes) != 2 {
		t.Fatalf("first change = %+v", r1)
	}
	r2, err := s.Apply(ctx, "acme", []control.Change{set(recompute, "2.5"), set(control.KeyQuotaBurst, "30")},
		control.Actor{KeyID: "key_1", Reason: "recovering"})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Version != 2 || len(r2.Changes) != 1 {
		t.Fatalf("second change (burst unchanged) = %+v", r2)
	}
	if r3, err := s.Apply(ctx, "acme", []control.Change{set(recompute, "2.50")}, ops); err != nil || r3.Version != 2 || len(r3.Changes) != 0 {
		t.Fatalf("no-op change = %+v, %v; want version 2, no changes", r3, err)
	}
	if _, err := s.Apply(ctx, "acme", []control.Change{unset(recompute)}, control.Actor{KeyID: "admin", Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	h, err := s.History(ctx, control.HistoryFilter{Tenant: "acme", Key: recompute})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		version       int64
		old, new      string
		actor, reason string
	}
	str := func(p *string) string {
		if p == nil {
			return "<unset>"
		}
		return *p
	}
	want := []row{
		{3, "2.5", "<unset>", "admin", "done"},
		{2, "0", "2.5", "key_1", "recovering"},
		{1, "<unset>", "0", "admin", "surge"},
	}
	if len(h) != len(want) {
		t.Fatalf("history has %d entries, want %d: %+v", len(h), len(want), h)
	}
	for i, e := range h {
		got := row{e.Version, str(e.OldValue), str(e.NewValue), e.Actor, e.Reason}
		if got != want[i] || e.At.IsZero() || e.Tenant != "acme" {
			t.Errorf("history[%d] = %+v, want %+v", i, got, want[i])
		}
	}
	if h[2].Operator != "alice" {
		t.Errorf("operator = %q", h[2].Operator)
	}
	all, _ := s.History(ctx, control.HistoryFilter{Limit: 2})
	if len(all) != 2 || all[0].ID <= all[1].ID {
		t.Errorf("paged history = %+v", all)
	}
}

func TestValidationChangesNothing(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Apply(ctx, "acme", []control.Change{set(recompute, "5")}, ops); err != nil {
		t.Fatal(err)
	}
	before := settings(t, s, "acme")
	for _, tc := range []struct {
		name    string
		tenant  string
		changes []control.Change
		err     error
	}{
		{"unknown key", "acme", []control.Change{set(backfill, "1"), set("tasks.nope.rate_per_partition", "1")}, control.ErrUnknownKey},
		{"wrong type", "acme", []control.Change{set(backfill, "1"), set(control.KeyQuotaBurst, "1.5")}, control.ErrInvalidValue},
		{"out of range", "acme", []control.Change{set(backfill, "1"), set(recompute, "-1")}, control.ErrOutOfRange},
		{"unknown tenant", "nobody", []control.Change{set(backfill, "1")}, control.ErrUnknownTenant},
		{"bad tenant", "Bad Tenant", []control.Change{set(backfill, "1")}, control.ErrUnknownTenant},
		{"unset unknown", "acme", []control.Change{unset("nope")}, control.ErrUnknownKey},
		{"duplicate", "acme", []control.Change{set(backfill, "1"), unset(backfill)}, control.ErrBadRequest},
		{"empty", "acme", nil, control.ErrBadRequest},
	} {
		if _, err := s.Apply(ctx, tc.tenant, tc.changes, ops); !errors.Is(err, tc.err) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
	}
	if _, err := s.ApplyPreset(ctx, "acme", "panic", ops); !errors.Is(err, control.ErrUnknownPreset) {
		t.Errorf("unknown preset: %v", err)
	}
	if _, err := s.ApplyPreset(ctx, "nobody", "surge", ops); !errors.Is(err, control.ErrUnknownTenant) {
		t.Errorf("preset on unknown tenant: %v", err)
	}
	after := settings(t, s, "acme")
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed from %s to %s", k, v, after[k])
		}
	}
	if h, _ := s.History(ctx, control.HistoryFilter{}); len(h) != 1 {
		t.Errorf("audit has %d entries, want 1", len(h))
	}
}

func TestPresetApplyRevertRestoresExactly(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	// Before: backfill overridden to 3, recompute and crawler quota unset,
	// a global crawler quota of 20 that acme inherits.
	if _, err := s.Apply(ctx, "acme", []control.Change{set(backfill, "3")}, ops); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, control.GlobalTenant, []control.Change{set(control.KeyQuotaCrawlerRPS, "20")}, ops); err != nil {
		t.Fatal(err)
	}
	before := settings(t, s, "acme")
	res, err := s.ApplyPreset(ctx, "acme", "surge", control.Actor{KeyID: "admin", Reason: "black friday"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 5 || res.Changes[0].Preset == nil || *res.Changes[0].Preset != "surge" {
		t.Fatalf("apply = %+v", res)
	}
	during := settings(t, s, "acme")
	for k, want := range map[string]string{recompute: "0/tenant", backfill: "0/tenant",
		control.TaskRateKey(control.TaskExportHuge): "0/tenant", control.KeyQuotaCrawlerRPS: "5/tenant", control.KeyQuotaCrawlerBurst: "5/tenant"} {
		if during[k] != want {
			t.Errorf("during surge %s = %s, want %s", k, during[k], want)
		}
	}
	if ts, _ := s.Settings(ctx, "acme"); len(ts.PresetsApplied) != 1 {
		t.Errorf("presets applied = %v", ts.PresetsApplied)
	}
	if _, err := s.ApplyPreset(ctx, "acme", "surge", ops); !errors.Is(err, control.ErrPresetApplied) {
		t.Errorf("second apply: %v", err)
	}
	// An operator eases recompute during the surge; revert still restores "unset".
	if _, err := s.Apply(ctx, "acme", []control.Change{set(recompute, "1")}, ops); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevertPreset(ctx, "acme", "surge", control.Actor{KeyID: "admin", Reason: "over"}); err != nil {
		t.Fatal(err)
	}
	after := settings(t, s, "acme")
	for k, v := range before {
		if after[k] != v {
			t.Errorf("after revert %s = %s, want %s", k, after[k], v)
		}
	}
	if _, err := s.RevertPreset(ctx, "acme", "surge", ops); !errors.Is(err, control.ErrPresetNotApplied) {
		t.Errorf("second revert: %v", err)
	}
	h, _ := s.History(ctx, control.HistoryFilter{Tenant: "acme", Key: recompute, Limit: 1})
	if len(h) != 1 || h[0].NewValue != nil || h[0].Preset == nil || *h[0].Preset != "surge (revert)" {
		t.Errorf("revert audit = %+v", h)
	}
}
