package features_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func countDef(name string) map[string]any {
	return map[string]any{"name": name, "source": "events", "entity": "card", "aggregation": "count", "windows": []string{"10m", "1h"}}
}

// TestEventsToReads sends events (one id twice, one late), reads the
// features back, and checks every value against the brute force.
func TestEventsToReads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", countDef("card_count"))
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", map[string]any{"name": "card_sum",
		"source": "events", "entity": "card", "aggregation": "sum", "field": "amount", "windows": []string{"1h"},
		"filter": `type == "payment"`})
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", map[string]any{"name": "card_devices",
		"source": "events", "entity": "card", "aggregation": "distinct_count", "field": "device", "windows": []string{"1h"}})
	// globex has a feature of the same name: nothing of acme's may reach it.
	e.must(http.StatusCreated, "globex", "POST", "/v1/features/definitions", countDef("card_count"))
	eventually(t, 10*time.Second, func() string {
		r := e.must(http.StatusOK, "acme", "GET", "/v1/features/definitions", nil)
		for _, d := range r.body["definitions"].([]any) {
			if s := d.(map[string]any)["state"]; s != "active" {
				return fmt.Sprintf("state %v", s)
			}
		}
		return ""
	})
	now := time.Now()
	var evs []map[string]any
	for i := range 20 {
		evs = append(evs, ev(fmt.Sprintf("e%d", i), now.Add(-time.Duration(i)*time.Minute), map[string]any{
			"card": fmt.Sprintf("c%d", i%3), "amount": 100 + i, "type": []string{"payment", "refund"}[i%2],
			"device": fmt.Sprintf("d%d", i%5)}))
	}
	e.must(http.StatusAccepted, "acme", "POST", "/v1/events", map[string]any{"events": evs})
	// The same ids again (a client retry), and a late one: counted once, dropped.
	e.must(http.StatusAccepted, "acme", "POST", "/v1/events", map[string]any{"events": evs[:5]})
	e.must(http.StatusAccepted, "acme", "POST", "/v1/events", ev("late", now.Add(-2*time.Hour), map[string]any{"card": "c0"}))
	eventually(t, 20*time.Second, func() string {
		var n int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM feature_events`).Scan(&n); err != nil {
			return err.Error()
		}
		if n != 20 {
			return fmt.Sprintf("%d events logged", n)
		}
		return ""
	})
	// c0: events 0,3,6,9,12,15,18 (minutes ago): all in 1h, those < 10m: 0,3,6,9 (9 min ago).
	eventually(t, 10*time.Second, func() string {
		r := e.must(http.StatusOK, "acme", "GET", "/v1/features/card/c0", nil)
		f := r.body["features"].(map[string]any)["card_count"].(map[string]any)["values"].(map[string]any)
		if f["1h"] != 7.0 || f["10m"] != 4.0 {
			return fmt.Sprintf("c0 count: %v", f)
		}
		return ""
	})
	r := e.must(http.StatusOK, "globex", "GET", "/v1/features/card/c0", nil)
	if f := r.body["features"].(map[string]any)["card_count"].(map[string]any)["values"].(map[string]any); f["1h"] != 0.0 {
		t.Fatalf("globex sees acme's events: %v", f)
	}
	if r.body["newest_event_time"] != nil {
		t.Fatalf("globex: newest_event_time %v", r.body["newest_event_time"])
	}
	eventually(t, 10*time.Second, func() string {
		if late, dup := e.series("bulwark_features_events_late_total")[""], e.series("bulwark_features_events_deduped_total")[""]; late != 1 || dup != 5 {
			return fmt.Sprintf("late %v (want 1), deduped %v (want 5)", late, dup)
		}
		return ""
	})
	rep := e.verified(10*time.Second, time.Now())
	if rep.Features != 4 || rep.Values != 12 || rep.Events != 60 {
		t.Fatalf("verify report %+v", rep)
	}
	// Batch read.
	r = e.must(http.StatusOK, "acme", "POST", "/v1/features/read", map[string]any{"entities": []map[string]string{
		{"type": "card", "id": "c1"}, {"type": "card", "id": "nobody"}}})
	if res := r.body["results"].([]any); len(res) != 2 {
		t.Fatalf("batch read: %s", r.raw)
	}
}

// TestLiveAndDefinitionsDoNotWaitOnEachOther: a batch's entity admission
// runs beside its tile transaction, and both meet the tenant's generation
// row. Events of a tenant no worker has seen (the live path creates its
// row) must be applied, and definition changes (which lock that row)
// arriving while events flow must neither stall the live path nor be
// missed by it: every event applied, verify agrees.
func TestLiveAndDefinitionsDoNotWaitOnEachOther(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	now := time.Now()
	applied := func() float64 { return e.series("bulwark_features_events_applied_total")["events"] }
	send := func(tn string, from, n int) {
		var evs []map[string]any
		for i := from; i < from+n; i++ {
			evs = append(evs, ev(fmt.Sprintf("e%d", i), now.Add(-time.Duration(i%50)*time.Second),
				map[string]any{"card": fmt.Sprintf("c%d", i%7)}))
		}
		e.must(http.StatusAccepted, tn, "POST", "/v1/events", map[string]any{"events": evs})
	}
	// No definition yet: the first batch creates acme's generation row.
	send("acme", 0, 20)
	eventually(t, 10*time.Second, func() string {
		if n := applied(); n != 20 {
			return fmt.Sprintf("%v of 20 events applied before any definition", n)
		}
		return ""
	})
	// Definitions change while events arrive.
	windows := [][]string{{"10m", "1h"}, {"1m", "1h"}, {"1h"}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 9 {
			d := countDef("f")
			d["windows"] = windows[i%len(windows)]
			e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", d)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for i := range 15 {
		send("acme", 20+i*10, 10)
		time.Sleep(15 * time.Millisecond)
	}
	<-done
	eventually(t, 15*time.Second, func() string {
		if n := applied(); n != 170 {
			return fmt.Sprintf("%v of 170 events applied", n)
		}
		return ""
	})
	e.verified(20*time.Second, time.Now())
}
