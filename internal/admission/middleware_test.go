package admission

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/bulwark-ledger/bulwark/internal/problem"
)

// classifyTest reads the route from the path and the claims from headers;
// every caller is entitled to claim "crawler" only.
func classifyTest(r *http.Request) Request {
	return Request{
		Tenant:   "t1",
		Route:    strings.TrimPrefix(r.URL.Path, "/"),
		Source:   r.Header.Get(SourceHeader),
		Traffic:  r.Header.Get(TrafficHeader),
		Entitled: Entitlements{Traffic: []string{"crawler"}},
		StaleOK:  r.Method == http.MethodGet && r.URL.Query().Get("stale") == "ok",
	}
}

func serve(h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func decodeProblem(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("content type %q", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMiddlewareRejections(t *testing.T) {
	reg := prometheus.NewRegistry()
	clk := &fakeClock{}
	c, err := New(Config{InitialLimit: 4, MinLimit: 2}, WithClock(clk.Now), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	c.SetRules(mustRules(testRulesText))
	if err := c.SetTenantQuota("quota-tenant", 1, 1); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	h := c.Middleware(func(r *http.Request) Request {
		req := classifyTest(r)
		if r.Header.Get("Tenant") != "" {
			req.Tenant = r.Header.Get("Tenant")
		}
		return req
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("block") != "" {
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	}))

	// Overload: four reads hold the estimate; the fifth is shed with 503.
	done := make(chan struct{})
	for range 4 {
		go func() { serve(h, "GET", "/reads?block=1", nil); done <- struct{}{} }()
	}
	waitFor(t, func() bool { return c.Stats().Inflight == 4 })
	w := serve(h, "GET", "/reads", nil)
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("shed read: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	p := decodeProblem(t, w)
	if p["code"] != CodeOverloaded || p["stage"] != "shedding" || p["reason"] != "capacity" || p["priority"] != 1.0 {
		t.Fatalf("problem %v", p)
	}
	// The top level passes.
	if w := serve(h, "POST", "/payments", nil); w.Code != 204 {
		t.Fatalf("payment: %d %s", w.Code, w.Body)
	}
	close(release)
	for range 4 {
		<-done
	}

	// Quota: 429 with its own code.
	serve(h, "GET", "/reads", map[string]string{"Tenant": "quota-tenant"})
	w = serve(h, "GET", "/reads", map[string]string{"Tenant": "quota-tenant"})
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("over quota: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if p := decodeProblem(t, w); p["code"] != CodeQuota || p["reason"] != "quota" {
		t.Fatalf("problem %v", p)
	}

	// Metrics: by priority and reason.
	if got := counterValue(t, c.m.rejected[1][ReasonCapacity]); got != 1 {
		t.Errorf("rejected{priority=1,reason=capacity} = %v, want 1", got)
	}
	if got := counterValue(t, c.m.rejected[1][ReasonQuota]); got != 1 {
		t.Errorf("rejected{priority=1,reason=quota} = %v, want 1", got)
	}
	if got := counterValue(t, c.m.admitted[2]); got != 1 {
		t.Errorf("admitted{priority=2} = %v, want 1", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"bulwark_admission_stage", "bulwark_admission_capacity_estimate",
		"bulwark_admission_inflight", "bulwark_admission_queue_delay_seconds", "bulwark_admission_admitted_total",
		"bulwark_admission_rejected_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}

func TestMiddlewareDowngradesClaims(t *testing.T) {
	c, _ := newTestController(t, Config{})
	var got Priority
	h := c.Middleware(classifyTest, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	// Callers here are entitled to claim "crawler" only: a partner source
	// and a "normal" traffic claim are ignored, and counted.
	req := classifyTest(httptest.NewRequest("GET", "/reads", nil))
	req.Source = "partner"
	got = c.Rules().Classify(&req)
	if want := c.Rules().Classify(&reqRead); got != want {
		t.Fatalf("claimed partner: priority %d, want %d", got, want)
	}
	serve(h, "GET", "/reads", map[string]string{SourceHeader: "partner", TrafficHeader: "normal"})
	if v := counterValue(t, c.m.downgraded[0]); v != 1 {
		t.Fatalf("downgraded{source} = %v, want 1", v)
	}
	if v := counterValue(t, c.m.downgraded[1]); v != 1 {
		t.Fatalf("downgraded{traffic} = %v, want 1", v)
	}
}

func TestMiddlewareOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		cancel  bool
		want    Outcome
	}{
		{"ok", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) }, false, Success},
		{"implicit 200", func(w http.ResponseWriter, r *http.Request) {}, false, Success},
		{"not found", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }, false, Failure},
		{"backend overloaded", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, false, Dropped},
		{"client gone", func(w http.ResponseWriter, r *http.Request) {}, true, Dropped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{ResponseWriter: httptest.NewRecorder()}
			ctx, cancel := context.WithCancel(context.Background())
			if tc.cancel {
				cancel()
			}
			defer cancel()
			tc.handler(rec, httptest.NewRequest("GET", "/", nil))
			if got := rec.outcome(ctx, true); got != tc.want {
				t.Fatalf("outcome %v, want %v", got, tc.want)
			}
		})
	}
	if got := (&recorder{}).outcome(context.Background(), false); got != Failure {
		t.Fatalf("panic: outcome %v, want failure", got)
	}
}

func TestMiddlewarePanicReleasesSlot(t *testing.T) {
	c, _ := newTestController(t, Config{})
	h := c.Middleware(classifyTest, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") }))
	func() {
		defer func() { _ = recover() }() // the panic is the test's point
		serve(h, "GET", "/reads", nil)
	}()
	if n := c.Stats().Inflight; n != 0 {
		t.Fatalf("in flight %d after a panic, want 0", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
