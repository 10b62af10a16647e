package admission

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Option configures New and NewReads with what is not tuning: the clock
// and the metrics registry.
type Option func(*options)

type options struct {
	now func() time.Time
	reg prometheus.Registerer
	tp  trace.TracerProvider
}

// WithClock replaces time.Now, so that tests control time. The clock must
// be safe for concurrent use and should be monotonic.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithRegisterer registers the metrics on reg. Without it the metrics are
// kept but not exported. Never the global default registry: two
// controllers in one process (tests, benchmarks) would collide.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.reg = reg }
}

// WithTracerProvider makes Middleware trace each decision as a span
// "admission", a child of the request's span (see internal/tracing).
// Without it Middleware does no tracing work.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tp = tp }
}

func buildOptions(opts []Option) options {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}
