package features_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features"
)

// TestEvaluate: evaluate answers with the event included (once, even when
// its id was applied already), record:true counts it once even when also
// sent to /v1/events, and every evaluation's detail record reaches the
// detail topic, held back while the task's rate is 0.
func TestEvaluate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.set("acme", control.TaskRateKey(control.TaskVelocityDetail), "0")
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", countDef("n"))
	e.must(http.StatusCreated, "acme", "POST", "/v1/features/definitions", map[string]any{"name": "amt",
		"source": "events", "entity": "card", "aggregation": "sum", "field": "amount", "windows": []string{"1h"}})
	now := time.Now()
	e.must(http.StatusAccepted, "acme", "POST", "/v1/events", map[string]any{"events": []any{
		ev("a", now, map[string]any{"card": "c", "amount": json.Number("170141183460469231731687303715884105727")}),
		ev("b", now, map[string]any{"card": "c", "amount": 1})}})
	read := func() float64 {
		r := e.must(http.StatusOK, "acme", "GET", "/v1/features/card/c", nil)
		return r.body["features"].(map[string]any)["n"].(map[string]any)["values"].(map[string]any)["1h"].(float64)
	}
	eventually(t, 20*time.Second, func() string {
		if n := read(); n != 2 {
			return fmt.Sprintf("count %v", n)
		}
		return ""
	})
	if r := e.must(http.StatusOK, "acme", "GET", "/v1/features/card/c", nil); !strings.Contains(r.raw, "170141183460469231731687303715884105728") {
		t.Fatalf("sum not exact: %s", r.raw)
	}
	evaluate := func(id string, record bool) map[string]any {
		r := e.must(http.StatusOK, "acme", "POST", "/v1/features/evaluate", map[string]any{"record": record,
			"event": ev(id, time.Now(), map[string]any{"card": "c", "amount": 10})})
		ents := r.body["entities"].([]any)
		if len(ents) != 1 {
			t.Fatalf("evaluate: %s", r.raw)
		}
		return ents[0].(map[string]any)["features"].(map[string]any)
	}
	if n := evaluate("x", false)["n"].(map[string]any)["values"].(map[string]any)["10m"]; n != 3.0 {
		t.Fatalf("evaluate without record: count %v, want 3 (own event included)", n)
	}
	if n := evaluate("a", false)["n"].(map[string]any)["values"].(map[string]any)["10m"]; n != 2.0 {
		t.Fatalf("evaluate of an applied id: count %v, want 2", n)
	}
	evaluate("y", true)
	e.must(http.StatusAccepted, "acme", "POST", "/v1/events", ev("y", time.Now(), map[string]any{"card": "c", "amount": 10}))
	eventually(t, 20*time.Second, func() string {
		if n := read(); n != 3 {
			return fmt.Sprintf("count %v, want 3 (x not recorded, y once)", n)
		}
		return ""
	})
	// Detail: three evaluations queued, none sent while paused.
	var queued int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM feature_detail_outbox`).Scan(&queued); err != nil || queued != 3 {
		t.Fatalf("outbox holds %d (%v), want 3", queued, err)
	}
	e.set("acme", control.TaskRateKey(control.TaskVelocityDetail), "100")
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(features.DefaultDetailTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for got < 3 && ctx.Err() == nil {
		got += len(cl.PollFetches(ctx).Records())
	}
	if got != 3 {
		t.Fatalf("%d detail records, want 3", got)
	}
	e.verified(10*time.Second, time.Now())
}
