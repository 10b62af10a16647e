package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/server"
	"github.com/bulwark-ledger/bulwark/internal/server/servertest"
)

// TestFeatures: every typed features call against a server running the
// api and features roles (embedded broker): define, list, show, events
// with a repeated id counted once, reads (path and batch form, an id with
// a slash), evaluate including its own event, typed errors, delete.
func TestFeatures(t *testing.T) {
	ctx := context.Background()
	base := servertest.Start(t, server.Config{PostgresURL: pgtest.NewDB(t), AdminKey: adminKey,
		Roles:   []string{server.RoleAPI, server.RoleFeat},
		DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	admin := newClient(t, base, adminKey)
	c := newClient(t, base, newTenant(t, admin, "risk"))

	def := client.FeatureDefinition{Name: "card_amount", Source: "events", Entity: "card",
		Aggregation: "sum", Field: "amount", Windows: []string{"1h", "10m"}, Filter: `type == "payment"`}
	v, err := c.DefineFeature(ctx, def)
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != 1 || v.Definition.Windows[0] != "10m" {
		t.Fatalf("defined %+v; want version 1 with windows sorted", v)
	}
	bad := def
	bad.Aggregation = "median"
	if _, err := c.DefineFeature(ctx, bad); !errors.Is(err, client.ErrUnknownAggregation) {
		t.Fatalf("bad aggregation: %v", err)
	}
	if _, err := c.FeatureVersions(ctx, "nope"); !errors.Is(err, client.ErrFeatureNotFound) {
		t.Fatalf("unknown feature: %v", err)
	}
	defs, err := c.FeatureDefinitions(ctx)
	if err != nil || len(defs) != 1 || defs[0].Name != "card_amount" {
		t.Fatalf("definitions %+v, %v", defs, err)
	}

	now := time.Now().UTC()
	huge, _ := new(big.Int).SetString("340282366920938463463374607431768211455", 10)
	evs := []client.Event{
		{ID: "e1", Time: now, Fields: map[string]any{"card": "c/1", "type": "payment", "amount": 100}},
		{ID: "e2", Time: now, Fields: map[string]any{"card": "c/1", "type": "payment", "amount": huge}},
		{ID: "e1", Time: now, Fields: map[string]any{"card": "c/1", "type": "payment", "amount": 100}}, // resent
		{ID: "e3", Time: now, Fields: map[string]any{"card": "c2", "type": "refund", "amount": 7}},
	}
	if n, err := c.SendEvents(ctx, evs); err != nil || n != len(evs) {
		t.Fatalf("send: %d, %v", n, err)
	}
	want := new(big.Int).Add(huge, big.NewInt(100)) // e1 once, e2: exact past 128 bits
	deadline := time.Now().Add(30 * time.Second)
	var got *client.EntityFeatures
	for {
		got, err = c.Features(ctx, client.EntityRef{Type: "card", ID: "c/1"})
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := got.Features["card_amount"].Values["1h"].Int(); ok && n.Cmp(want) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c/1 never reached %s: %+v", want, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.NewestEventTime == nil {
		t.Fatal("no newest_event_time")
	}
	rs, err := c.ReadFeatures(ctx, []client.EntityRef{{Type: "card", ID: "c2"}, {Type: "card", ID: "c/1"}})
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := rs[0].Features["card_amount"].Values["10m"].Int(); !ok || n.Sign() != 0 {
		t.Fatalf("c2 (a refund, filtered out) = %v", rs[0].Features["card_amount"].Values["10m"])
	}
	if rs[1].EntityID != "c/1" {
		t.Fatalf("batch order: %+v", rs)
	}
	ev, err := c.Evaluate(ctx, client.Event{ID: "auth-1", Time: time.Now().UTC(),
		Fields: map[string]any{"card": "c/1", "type": "payment", "amount": 5}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Entities) != 1 {
		t.Fatalf("evaluate entities %+v", ev.Entities)
	}
	if n, ok := ev.Entities[0].Features["card_amount"].Values["1h"].Int(); !ok || n.Cmp(new(big.Int).Add(want, big.NewInt(5))) != 0 {
		t.Fatalf("evaluate does not include its event: %v", ev.Entities[0].Features["card_amount"].Values["1h"])
	}
	// Local validation: nothing is sent.
	cnt := newCounter()
	lc := newClient(t, base, "bwk_unused", client.WithHTTPClient(&http.Client{Transport: cnt}))
	if _, err := lc.SendEvents(ctx, []client.Event{{ID: "", Time: now}}); !errors.Is(err, client.ErrInvalidEvent) {
		t.Fatalf("empty id: %v", err)
	}
	if _, err := lc.SendEvents(ctx, nil); !errors.Is(err, client.ErrInvalidEvent) {
		t.Fatalf("no events: %v", err)
	}
	if cnt.get("POST /v1/events") != 0 {
		t.Fatal("invalid events were sent")
	}
	if err := c.DeleteFeature(ctx, "card_amount"); err != nil {
		t.Fatal(err)
	}
	if defs, err := c.FeatureDefinitions(ctx); err != nil || len(defs) != 0 {
		t.Fatalf("after delete: %+v, %v", defs, err)
	}
}
