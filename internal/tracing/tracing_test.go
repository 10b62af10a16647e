package tracing_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulwark-ledger/bulwark/internal/cdc/relay"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/server"
	"github.com/bulwark-ledger/bulwark/internal/server/servertest"
	"github.com/bulwark-ledger/bulwark/internal/tracing"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const adminKey = "bwa_tracing_test_admin_key"

// TestTracesFollowARequestAndTheStream runs a server with every role it
// can run here and an in-memory exporter, sends a transfer carrying a W3C
// traceparent, and follows it: the HTTP span continues the caller's
// trace, admission is its child, the ledger batch that committed it links
// to it and it carries the batch's event, and the change stream's Kafka
// transaction has its receive, commit and confirm stages.
func TestTracesFollowARequestAndTheStream(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := tracing.NewProvider(tracing.Config{Roles: []string{"api", "workers", "cdc"}}, sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	base := servertest.Start(t, server.Config{PostgresURL: pgtest.NewDB(t), AdminKey: adminKey,
		Roles: []string{server.RoleAPI, server.RoleWorkers, server.RoleCDC}, DataDir: t.TempDir(),
		CDC:            relay.Config{HeartbeatInterval: -1},
		TracerProvider: tp,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil))})

	servertest.Call(t, base, adminKey, "POST", "/v1/admin/tenants", `{"id":"acme"}`, 201)
	tk := servertest.Call(t, base, adminKey, "POST", "/v1/admin/tenants/acme/api-keys", ``, 201)["key"].(string)
	servertest.Call(t, base, tk, "POST", "/v1/accounts", `{"id":"a","asset":"USD"}`, 201)
	servertest.Call(t, base, tk, "POST", "/v1/accounts", `{"id":"b","asset":"USD"}`, 201)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	servertest.Call(t, base, tk, "POST", "/v1/transactions",
		`{"idempotency_key":"traced","postings":[{"source":"a","destination":"b","amount":"5","asset":"USD"}]}`, 201,
		"Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")

	// Changes committed before the relay's slot exists reach Kafka in its
	// snapshot, which is not traced: transfer until one is streamed.
	i := 0
	spans := waitSpans(t, exp, func(s tracetest.SpanStubs) bool {
		if find(s, "cdc.lsn_confirm") != nil {
			return true
		}
		i++
		servertest.Call(t, base, tk, "POST", "/v1/transactions",
			fmt.Sprintf(`{"idempotency_key":"more%d","postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, i), 201)
		return false
	})

	req := findWhere(spans, func(s *tracetest.SpanStub) bool {
		return s.Name == "POST /v1/transactions" && s.SpanContext.TraceID().String() == traceID
	})
	if req == nil {
		t.Fatalf("no span POST /v1/transactions in trace %s: %s", traceID, names(spans))
	}
	if req.SpanKind != trace.SpanKindServer || attr(req.Attributes, "http.response.status_code") != "201" ||
		attr(req.Attributes, "http.route") != "POST /v1/transactions" {
		t.Errorf("request span: kind %v, attributes %v", req.SpanKind, req.Attributes)
	}
	if req.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("request span's parent %s, want the caller's span 00f067aa0ba902b7", req.Parent.SpanID())
	}

	adm := findWhere(spans, func(s *tracetest.SpanStub) bool {
		return s.Name == "admission" && s.Parent.SpanID() == req.SpanContext.SpanID()
	})
	if adm == nil {
		t.Fatalf("no admission span under the request span: %s", names(spans))
	}
	if attr(adm.Attributes, "bulwark.admission.outcome") != "admitted" || attr(adm.Attributes, "bulwark.admission.route") != "payments" ||
		attr(adm.Attributes, "bulwark.admission.priority") == "" {
		t.Errorf("admission span attributes %v", adm.Attributes)
	}

	// The request span names its batch in an event; the batch links back.
	var batchSpanID string
	for _, ev := range req.Events {
		if ev.Name == "ledger.batch" {
			batchSpanID = attr(ev.Attributes, "bulwark.ledger.batch.span_id")
		}
	}
	batch := findWhere(spans, func(s *tracetest.SpanStub) bool {
		return s.Name == "ledger.batch" && s.SpanContext.SpanID().String() == batchSpanID
	})
	if batch == nil {
		t.Fatalf("request span has no ledger.batch event naming an exported batch span (event span id %q): %s", batchSpanID, names(spans))
	}
	linked := false
	for _, l := range batch.Links {
		linked = linked || l.SpanContext.SpanID() == req.SpanContext.SpanID()
	}
	if !linked {
		t.Errorf("batch span links %v, want the request span %s", batch.Links, req.SpanContext.SpanID())
	}
	if batch.Parent.IsValid() {
		t.Errorf("batch span has parent %s, want a root span (it serves many requests)", batch.Parent.SpanID())
	}
	for _, k := range []string{"bulwark.ledger.batch.id", "bulwark.ledger.batch.requests", "bulwark.ledger.batch.transactions",
		"bulwark.ledger.batch.lock_seconds", "bulwark.ledger.batch.commit_seconds"} {
		if attr(batch.Attributes, k) == "" {
			t.Errorf("batch span has no %s: %v", k, batch.Attributes)
		}
	}
	if attr(batch.Attributes, "bulwark.ledger.batch.lock_seconds") == "0" || attr(batch.Attributes, "bulwark.ledger.batch.commit_seconds") == "0" {
		t.Errorf("batch span timings are zero: %v", batch.Attributes)
	}

	// Scrapes and probes make no trace.
	servertest.Call(t, base, "", "GET", "/metrics", "", 200)
	servertest.Call(t, base, "", "GET", "/healthz", "", 200)
	for _, s := range exp.GetSpans() {
		if route := attr(s.Attributes, "url.path"); route == "/metrics" || route == "/healthz" {
			t.Errorf("span %s for %s: probes and scrapes are not traced", s.Name, route)
		}
	}

	// The change stream: a Kafka transaction with its stages as children.
	kt := find(spans, "cdc.kafka_transaction")
	if kt == nil {
		t.Fatalf("no cdc.kafka_transaction span: %s", names(spans))
	}
	for _, stage := range []string{"cdc.receive", "cdc.kafka_commit", "cdc.lsn_confirm"} {
		s := findWhere(spans, func(s *tracetest.SpanStub) bool {
			return s.Name == stage && s.Parent.SpanID() == kt.SpanContext.SpanID()
		})
		if s == nil {
			t.Errorf("no %s span under %s: %s", stage, kt.SpanContext.SpanID(), names(spans))
		}
	}
	if rcv := find(spans, "cdc.receive"); rcv != nil && attr(rcv.Attributes, "bulwark.cdc.encode_seconds") == "" {
		t.Errorf("receive span has no encode time: %v", rcv.Attributes)
	}
}

// TestOffUnlessConfigured: with no endpoint, flag or variable, New returns
// no provider (tracing off); a bad sample ratio is refused.
func TestOffUnlessConfigured(t *testing.T) {
	t.Setenv(tracing.EndpointEnv, "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tp, err := tracing.New(context.Background(), tracing.Config{})
	if err != nil || tp != nil {
		t.Fatalf("New with no endpoint = %v, %v; want nil, nil", tp, err)
	}
	if _, err := tracing.New(context.Background(), tracing.Config{Endpoint: "http://127.0.0.1:1", SampleRatio: 2}); err == nil {
		t.Fatal("sample ratio 2 accepted")
	}
	t.Setenv(tracing.EndpointEnv, "http://127.0.0.1:1")
	tp, err = tracing.New(context.Background(), tracing.Config{})
	if err != nil || tp == nil {
		t.Fatalf("New with %s set = %v, %v; want a provider", tracing.EndpointEnv, tp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = tp.Shutdown(ctx) // nothing queued: nothing to send to the closed port
}

// TestNewExportsOverOTLPHTTP: a provider from New with an endpoint URL
// posts its spans as OTLP protobuf to <endpoint>/v1/traces, and Shutdown
// flushes what is queued.
func TestNewExportsOverOTLPHTTP(t *testing.T) {
	got := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- fmt.Sprintf("%s %s %s %d", r.Method, r.URL.Path, r.Header.Get("Content-Type"), len(body))
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	tp, err := tracing.New(context.Background(), tracing.Config{Endpoint: srv.URL, ServiceName: "bulwark-test"})
	if err != nil || tp == nil {
		t.Fatalf("New: %v, %v", tp, err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "exported")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case req := <-got:
		if !strings.HasPrefix(req, "POST /v1/traces application/x-protobuf ") || strings.HasSuffix(req, " 0") {
			t.Errorf("collector got %q, want a non-empty protobuf POST to /v1/traces", req)
		}
	default:
		t.Fatal("nothing exported to the collector")
	}
}

func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, done func(tracetest.SpanStubs) bool) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		spans := exp.GetSpans()
		if done(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans after 60 s: %s", names(spans))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func find(spans tracetest.SpanStubs, name string) *tracetest.SpanStub {
	return findWhere(spans, func(s *tracetest.SpanStub) bool { return s.Name == name })
}

func findWhere(spans tracetest.SpanStubs, f func(*tracetest.SpanStub) bool) *tracetest.SpanStub {
	for i := range spans {
		if f(&spans[i]) {
			return &spans[i]
		}
	}
	return nil
}

func names(spans tracetest.SpanStubs) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "\n  %s %s parent %s", s.Name, s.SpanContext.SpanID(), s.Parent.SpanID())
	}
	return b.String()
}

func attr(kvs []attribute.KeyValue, key string) string {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}
