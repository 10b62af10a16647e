package features_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/control"
)

// TestDefinitionsBadInput: every refused definition answers its problem
// code and changes nothing.
func TestDefinitionsBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noWorkers: true})
	good := func() map[string]any { return countDef("ok") }
	with := func(k string, v any) map[string]any {
		d := good()
		if v == nil {
			delete(d, k)
		} else {
			d[k] = v
		}
		return d
	}
	cases := []struct {
		name string
		body any
		code string
	}{
		{"malformed", `{"name":`, "malformed_json"},
		{"unknown member", with("colour", "red"), "unknown_member"},
		{"duplicate member", `{"name":"a","name":"b"}`, "duplicate_member"},
		{"unknown aggregation", with("aggregation", "median"), "unknown_aggregation"},
		{"window too short", with("windows", []string{"30s"}), "window_out_of_range"},
		{"window too long", with("windows", []string{"91d"}), "window_out_of_range"},
		{"bad filter", with("filter", `type == `), "invalid_filter"},
		{"ledger field unknown", map[string]any{"name": "x", "source": "ledger", "entity": "card",
			"aggregation": "count", "windows": []string{"1h"}}, "unknown_field"},
		{"bad name", with("name", "Bad Name"), "invalid_definition"},
		{"no window", with("windows", []string{}), "invalid_definition"},
	}
	for _, c := range cases {
		r := e.do("acme", "POST", "/v1/features/definitions", c.body)
		if r.status/100 != 4 || r.body["code"] != c.code {
			t.Errorf("%s: %d %s, want code %s", c.name, r.status, r.raw, c.code)
		}
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM feature_versions`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused definitions stored %d versions (%v)", n, err)
	}
	// The per-tenant limit is a live setting.
	e.set("acme", control.KeyFeaturesMaxDefinitions, "2")
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", countDef("a"))
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", countDef("b"))
	r := e.must(http.StatusConflict, "acme", "POST", "/v1/features/definitions", countDef("c"))
	if r.body["code"] != "too_many_features" {
		t.Fatalf("limit: %s", r.raw)
	}
	// Unchanged redefinition: no new version; another tenant is unaffected.
	e.must(http.StatusOK, "acme", "POST", "/v1/features/definitions", countDef("a"))
	e.must(http.StatusCreated, "globex", "POST", "/v1/features/definitions", countDef("c"))
	// Another tenant's feature is not found; delete frees a slot.
	e.must(http.StatusNotFound, "globex", "GET", "/v1/features/definitions/a", nil)
	e.must(http.StatusNotFound, "globex", "DELETE", "/v1/features/definitions/a", nil)
	e.must(http.StatusNoContent, "acme", "DELETE", "/v1/features/definitions/a", nil)
	e.must(http.StatusNotFound, "acme", "DELETE", "/v1/features/definitions/a", nil)
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", countDef("c"))
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM feature_versions`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("%d versions stored (%v), want 4", n, err)
	}
	r = e.must(http.StatusOK, "acme", "GET", "/v1/features/definitions/a", nil)
	if vs := r.body["versions"].([]any); len(vs) != 1 || vs[0].(map[string]any)["state"] != "retired" {
		t.Fatalf("deleted feature: %s", r.raw)
	}
	// Bad events, bad batch reads.
	for _, body := range []any{`{"id":"x"}`, `{"events":[]}`, map[string]any{"id": "", "time": time.Now(), "fields": map[string]any{}}} {
		if r := e.do("acme", "POST", "/v1/events", body); r.status != http.StatusBadRequest {
			t.Errorf("event %v: %d %s", body, r.status, r.raw)
		}
	}
	many := make([]map[string]string, 101)
	for i := range many {
		many[i] = map[string]string{"type": "card", "id": fmt.Sprint(i)}
	}
	if r := e.do("acme", "POST", "/v1/features/read", map[string]any{"entities": many}); r.body["code"] != "batch_too_large" {
		t.Errorf("101 entities: %s", r.raw)
	}
	if r := e.do("acme", "POST", "/v1/features/evaluate", map[string]any{"record": true}); r.body["code"] != "invalid_request" {
		t.Errorf("evaluate without event: %s", r.raw)
	}
}

// TestVersionSwitch changes a feature: reads answer version 1 until
// version 2 is recomputed, then version 2, and version 1 is retired.
func TestVersionSwitch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{cfg: featuresConfigChunk(5)})
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", countDef("f"))
	now := time.Now()
	var evs []map[string]any
	for i := range 40 {
		evs = append(evs, ev(fmt.Sprint("e", i), now.Add(-time.Duration(i)*time.Second),
			map[string]any{"card": "c", "type": []string{"payment", "refund"}[i%2]}))
	}
	e.must(http.StatusAccepted, "acme", "POST", "/v1/events", map[string]any{"events": evs})
	value := func() (float64, float64) {
		r := e.must(http.StatusOK, "acme", "GET", "/v1/features/card/c", nil)
		f := r.body["features"].(map[string]any)["f"].(map[string]any)
		return f["values"].(map[string]any)["1h"].(float64), f["version"].(float64)
	}
	eventually(t, 20*time.Second, func() string {
		if n, _ := value(); n != 40 {
			return fmt.Sprintf("v1 count %v", n)
		}
		return ""
	})
	eventually(t, 10*time.Second, func() string {
		r := e.must(http.StatusOK, "acme", "GET", "/v1/features/definitions/f", nil)
		if s := r.body["versions"].([]any)[0].(map[string]any)["state"]; s != "active" {
			return fmt.Sprint("version 1 ", s)
		}
		return ""
	})
	// Pause the recompute so version 1 is observably still served.
	e.set("acme", control.TaskRateKey(control.TaskRecompute), "0")
	d := countDef("f")
	d["filter"] = `type == "payment"`
	r := e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", d)
	if r.body["version"] != 2.0 || r.body["state"] != "building" {
		t.Fatalf("change: %s", r.raw)
	}
	time.Sleep(300 * time.Millisecond)
	if n, v := value(); n != 40 || v != 1 {
		t.Fatalf("during recompute: count %v from version %v, want 40 from 1", n, v)
	}
	e.set("acme", control.TaskRateKey(control.TaskRecompute), "100")
	eventually(t, 20*time.Second, func() string {
		if n, v := value(); n != 20 || v != 2 {
			return fmt.Sprintf("count %v from version %v", n, v)
		}
		return ""
	})
	r = e.must(http.StatusOK, "acme", "GET", "/v1/features/definitions/f", nil)
	vs := r.body["versions"].([]any)
	if vs[0].(map[string]any)["state"] != "retired" || vs[1].(map[string]any)["state"] != "active" {
		t.Fatalf("versions after the switch: %s", r.raw)
	}
	e.verified(10*time.Second, time.Now())
}

// TestEntityLimit: beyond features.max_entities a tenant's new entities
// are not aggregated (another tenant's are).
func TestEntityLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.set("acme", control.KeyFeaturesMaxEntities, "2")
	for _, tn := range []string{"acme", "globex"} {
		e.must(http.StatusCreated, tn, "POST", "/v1/features/definitions", countDef("n"))
		e.must(http.StatusAccepted, tn, "POST", "/v1/events", map[string]any{"events": []any{
			ev("1", time.Now(), map[string]any{"card": "a"}), ev("2", time.Now(), map[string]any{"card": "b"}),
			ev("3", time.Now(), map[string]any{"card": "c"})}})
	}
	count := func(tn, card string) float64 {
		r := e.must(http.StatusOK, tn, "GET", "/v1/features/card/"+card, nil)
		return r.body["features"].(map[string]any)["n"].(map[string]any)["values"].(map[string]any)["1h"].(float64)
	}
	eventually(t, 20*time.Second, func() string {
		if n := count("globex", "c"); n != 1 {
			return fmt.Sprint("globex c: ", n)
		}
		// Which two of the three are tracked depends on the order their
		// partitions are applied in.
		if n := count("acme", "a") + count("acme", "b") + count("acme", "c"); n != 2 {
			return fmt.Sprint("acme a+b+c: ", n)
		}
		return ""
	})
	var tracked int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM feature_entities WHERE tenant_id = 'acme'`).Scan(&tracked); err != nil || tracked != 2 {
		t.Fatalf("acme tracks %d entities (%v), want 2", tracked, err)
	}
}

// TestKnownEntitiesKeepTheLimit: once the live path knows entities are
// tracked it no longer probes them; their events still count, and a new
// entity is still admitted or refused by features.max_entities exactly.
func TestKnownEntitiesKeepTheLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.set("acme", control.KeyFeaturesMaxEntities, "3")
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", countDef("n"))
	eventually(t, 10*time.Second, func() string {
		r := e.must(http.StatusOK, "acme", "GET", "/v1/features/definitions/n", nil)
		if s := r.body["versions"].([]any)[0].(map[string]any)["state"]; s != "active" {
			return fmt.Sprint("state ", s)
		}
		return ""
	})
	sent := map[string]int{}
	id := 0
	send := func(cards ...string) {
		var evs []any
		for _, c := range cards {
			id++
			evs = append(evs, ev(fmt.Sprint("k", id), time.Now(), map[string]any{"card": c}))
			sent[c]++
		}
		e.must(http.StatusAccepted, "acme", "POST", "/v1/events", map[string]any{"events": evs})
	}
	// sendUntilKnown sends batches of cards until the live path knows n
	// entities (their tracking's WAL flushed).
	sendUntilKnown := func(n float64, cards ...string) {
		eventually(t, 20*time.Second, func() string {
			send(cards...)
			time.Sleep(100 * time.Millisecond)
			if got := e.series("bulwark_features_entities_known")[""]; got != n {
				return fmt.Sprintf("entities known: %v, want %v", got, n)
			}
			return ""
		})
	}
	sendUntilKnown(2, "a", "b")
	send("a", "b", "c", "d") // one of c and d is the third entity, the other the fourth
	count := func(card string) float64 {
		r := e.must(http.StatusOK, "acme", "GET", "/v1/features/card/"+card, nil)
		return r.body["features"].(map[string]any)["n"].(map[string]any)["values"].(map[string]any)["1h"].(float64)
	}
	eventually(t, 20*time.Second, func() string {
		// Which of c and d is admitted depends on the order their
		// partitions are applied in; exactly one is.
		got := fmt.Sprint(count("a"), count("b"), count("c")+count("d"))
		if want := fmt.Sprint(sent["a"], sent["b"], 1); got != want {
			return fmt.Sprintf("counts a, b, c+d: %s, want %s", got, want)
		}
		return ""
	})
	// More events of both: the admitted one counts them all, the refused
	// one none, however long the live path has known the admitted one.
	sendUntilKnown(3, "c", "d")
	send("c", "d")
	eventually(t, 20*time.Second, func() string {
		c, d := count("c"), count("d")
		if (c == float64(sent["c"]) && d == 0) || (d == float64(sent["d"]) && c == 0) {
			return ""
		}
		return fmt.Sprintf("c %v d %v of %d each: one must count all, the other none", c, d, sent["c"])
	})
	var tracked, counted int
	if err := e.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM feature_entities WHERE tenant_id = 'acme'),
		(SELECT entities FROM feature_entity_counts WHERE tenant_id = 'acme')`).Scan(&tracked, &counted); err != nil {
		t.Fatal(err)
	}
	if tracked != 3 || counted != 3 {
		t.Fatalf("acme tracks %d entities and counts %d, want 3 and 3", tracked, counted)
	}
}
