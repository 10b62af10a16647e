// Package tracing sets up OpenTelemetry tracing for a Bulwark process: a
// TracerProvider exporting spans over OTLP/HTTP, off unless an endpoint is
// configured. The provider is passed explicitly (server.Config →
// ledger.PipelineConfig, admission.WithTracerProvider, relay.Config);
// nothing is set globally. A component given a nil provider does no
// tracing work at all: no spans, no clock reads, no allocations.
//
// What is traced (the paths an on-call engineer follows):
//
//   - "http <route>": one span per HTTP request at the edge, a root span
//     unless the caller sent a W3C traceparent header (then its child).
//   - "admission": the admission decision, a child of the request span,
//     with the priority, stage and outcome (admitted or the reason).
//   - "ledger.batch": one root span per commit-pipeline batch, with the
//     batch id, its requests and transactions, the time spent taking the
//     row locks, applying in memory and committing, and links to the
//     request spans it served (up to the SDK's link limit, 128 by
//     default). Each request span gets an event "ledger.batch" with the
//     batch id and the batch span's trace and span ids: a batch serves many
//     requests, so it is linked, not a child of one of them.
//   - "cdc.kafka_transaction": one root span per Kafka transaction of the
//     change stream, with children "cdc.receive" (one per PostgreSQL
//     transaction: from its Begin to its Commit message, with the time
//     spent encoding its events as an attribute, since encoding is
//     interleaved change by change), "cdc.kafka_commit" and
//     "cdc.lsn_confirm". Transactions that produce nothing (heartbeats,
//     changes Kafka already holds) make no trace.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// EndpointEnv is the standard OTLP endpoint variable; the exporter also
// honours the other OTEL_EXPORTER_OTLP_* variables (headers, timeout,
// certificates, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
const EndpointEnv = "OTEL_EXPORTER_OTLP_ENDPOINT"

// Config of tracing.
type Config struct {
	// Endpoint is the OTLP/HTTP collector, as a URL
	// ("http://collector:4318"; the path /v1/traces is added) or host:port
	// (HTTPS). Empty means the OTEL_EXPORTER_OTLP_ENDPOINT or
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variables; with neither set,
	// tracing is off.
	Endpoint string
	// ServiceName is the service.name resource attribute. Empty means
	// "bulwark".
	ServiceName string
	// Roles are recorded as the bulwark.roles resource attribute, so that
	// spans of separately deployed roles can be told apart.
	Roles []string
	// SampleRatio is the share of root traces kept, in (0, 1]. Zero means
	// 1 (every trace: the volume is one span per request plus one per
	// batch); a child follows its parent's decision.
	SampleRatio float64
}

// Enabled reports whether cfg, with the environment, turns tracing on.
func (c Config) Enabled() bool {
	return c.Endpoint != "" || os.Getenv(EndpointEnv) != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// ErrBadConfig reports a Config that contradicts itself.
var ErrBadConfig = errors.New("tracing: bad config")

// New returns a provider exporting to the configured collector, or nil
// when tracing is off. The caller shuts it down (flushing queued spans)
// after everything that traces has stopped. Spans are exported in batches
// by the SDK's batch processor: its queue is bounded (2,048 spans by
// default); when the collector is slow or gone, further spans are dropped,
// never blocking a request.
func New(ctx context.Context, cfg Config) (*sdktrace.TracerProvider, error) {
	if !cfg.Enabled() {
		return nil, nil //nolint:nilnil // nil provider means off, as documented
	}
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("%w: sample ratio %v not in (0, 1]", ErrBadConfig, cfg.SampleRatio)
	}
	var opts []otlptracehttp.Option
	if e := cfg.Endpoint; e != "" {
		if strings.Contains(e, "://") {
			opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(e, "/")+"/v1/traces"))
		} else {
			opts = append(opts, otlptracehttp.WithEndpoint(e))
		}
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
	}
	return NewProvider(cfg, sdktrace.WithBatcher(exp)), nil
}

// NewProvider returns a provider with cfg's resource and sampler and the
// given span processors (tests pass an in-memory exporter).
func NewProvider(cfg Config, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	name := cfg.ServiceName
	if name == "" {
		name = "bulwark"
	}
	ratio := cfg.SampleRatio
	if ratio == 0 {
		ratio = 1
	}
	res := resource.NewSchemaless(attribute.String("service.name", name),
		attribute.String("bulwark.roles", strings.Join(cfg.Roles, ",")))
	opts = append([]sdktrace.TracerProviderOption{sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)))}, opts...)
	return sdktrace.NewTracerProvider(opts...)
}
