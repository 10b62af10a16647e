package admission

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestAdmitTracedOffAllocs: without a tracer provider the traced decision
// is Admit itself, and allocates nothing.
func TestAdmitTracedOffAllocs(t *testing.T) {
	c := benchController(t)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		tk, err := c.admitTraced(ctx, benchReq)
		if err != nil {
			t.Fatal(err)
		}
		tk.Done(Success)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per traced-off Admit+Done, want 0", allocs)
	}
}

// TestAdmitTracedRejection: a rejected request's admission span says why,
// at which stage and priority, and is marked as an error.
func TestAdmitTracedRejection(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	c, err := New(Config{MinLimit: 1, MaxLimit: 1, InitialLimit: 1, MaxInflight: 1}, WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.admitTraced(context.Background(), benchReq)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Done(Success)
	if _, err := c.admitTraced(context.Background(), benchReq); err == nil {
		t.Fatal("second request admitted past a hard limit of 1")
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	got := map[string]string{}
	for _, kv := range spans[1].Attributes {
		got[string(kv.Key)] = kv.Value.String()
	}
	if got["bulwark.admission.outcome"] != "rejected" || got["bulwark.admission.reason"] == "" ||
		got["bulwark.admission.priority"] == "" || got["bulwark.admission.stage"] == "" {
		t.Errorf("rejection span attributes %v", got)
	}
	if spans[1].Status.Code.String() != "Error" {
		t.Errorf("rejection span status %v, want Error", spans[1].Status)
	}
}

// BenchmarkAdmitTraced is the admission decision's cost with tracing off
// (the nil tracer: Admit itself) and on (an SDK provider sampling every
// span, exporting nowhere): the price of the "admission" span.
func BenchmarkAdmitTraced(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		c := benchController(b)
		if on {
			name = "on"
			c.tracer = sdktrace.NewTracerProvider().Tracer(traceScope)
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				tk, err := c.admitTraced(ctx, benchReq)
				if err != nil {
					b.Fatal(err)
				}
				tk.Done(Success)
			}
		})
	}
}
