package edge

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const traceScope = "github.com/bulwark-ledger/bulwark/internal/edge"

// Trace wraps next (the handler from Handler or Instrument) in a server
// span per request: a child of the caller's span when the request carries
// a W3C traceparent header, else a root span. Instrument names it after
// the route pattern once the route is known, and records the status.
// Without tracing, do not wrap: Instrument then does no tracing work
// beyond one context lookup. Scrapes and probes (/metrics, /healthz,
// /readyz) are not traced: every few seconds per pod, they would bury the
// traces worth reading.
func Trace(tp trace.TracerProvider, next http.Handler) http.Handler {
	tracer := tp.Tracer(traceScope)
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics", "/healthz", "/readyz":
			next.ServeHTTP(w, r)
			return
		}
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, "http "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// traceRequest names the request's span after route and records status
// (5xx marks the span as an error, as the HTTP conventions say for a
// server span).
func traceRequest(r *http.Request, route string, status int) {
	span := trace.SpanFromContext(r.Context())
	if !span.IsRecording() {
		return
	}
	span.SetName(route)
	span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}
