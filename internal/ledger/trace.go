package ledger

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing of the commit pipeline (on when PipelineConfig.TracerProvider is
// set). A batch serves many requests, so its span is a root span of its
// own, "ledger.batch", rather than the child of one request: it links to
// the spans of the requests it serves, and each of those gets an event
// "ledger.batch" naming the batch (id, trace and span ids), so the way
// from a slow request to its batch is one click either way. Links are
// capped by the SDK's span limits (128 by default); the events are not.

const traceScope = "github.com/bulwark-ledger/bulwark/internal/ledger"

// Attribute keys of the batch span and the request event.
const (
	attrBatchID      = attribute.Key("bulwark.ledger.batch.id")
	attrRequests     = attribute.Key("bulwark.ledger.batch.requests")
	attrTransactions = attribute.Key("bulwark.ledger.batch.transactions")
	attrLockSeconds  = attribute.Key("bulwark.ledger.batch.lock_seconds")
	attrApplySeconds = attribute.Key("bulwark.ledger.batch.apply_seconds")
	attrCommitSecs   = attribute.Key("bulwark.ledger.batch.commit_seconds")
	attrAttempts     = attribute.Key("bulwark.ledger.batch.db_transactions")
	attrFailed       = attribute.Key("bulwark.ledger.batch.failed_requests")
	attrTraceID      = attribute.Key("bulwark.ledger.batch.trace_id")
	attrSpanID       = attribute.Key("bulwark.ledger.batch.span_id")
)

// batchTrace is the span of one batch being committed. A nil *batchTrace
// (tracing off) does nothing.
type batchTrace struct {
	span trace.Span
	id   uint64
	t    batchTiming
}

func (p *Pipeline) startBatchTrace(ctx context.Context, batch []*request) (context.Context, *batchTrace) {
	bt := &batchTrace{id: p.batches.Add(1)}
	links := make([]trace.Link, 0, len(batch))
	n := 0
	for _, r := range batch {
		n += len(r.items)
		if r.span != nil {
			if sc := r.span.SpanContext(); sc.IsValid() {
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
	}
	ctx, bt.span = p.tracer.Start(ctx, "ledger.batch", trace.WithNewRoot(), trace.WithLinks(links...),
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attrBatchID.Int64(int64(bt.id)), attrRequests.Int(len(batch)), attrTransactions.Int(n)))
	return ctx, bt
}

func (bt *batchTrace) timing() *batchTiming {
	if bt == nil {
		return nil
	}
	return &bt.t
}

// end records the timings and outcome on the batch span, ends it, and adds
// the "ledger.batch" event to every request span still recording.
func (bt *batchTrace) end(batch []*request) {
	if bt == nil {
		return
	}
	failed := 0
	var firstErr error
	for _, r := range batch {
		if r.err != nil {
			failed++
			if firstErr == nil {
				firstErr = r.err
			}
		}
	}
	bt.span.SetAttributes(attrLockSeconds.Float64(bt.t.lock.Seconds()), attrApplySeconds.Float64(bt.t.apply.Seconds()),
		attrCommitSecs.Float64(bt.t.commit.Seconds()), attrAttempts.Int(bt.t.attempts), attrFailed.Int(failed))
	if firstErr != nil {
		bt.span.RecordError(firstErr)
		bt.span.SetStatus(codes.Error, "batch failed for some requests")
	}
	sc := bt.span.SpanContext()
	bt.span.End()
	ev := trace.WithAttributes(attrBatchID.Int64(int64(bt.id)), attrRequests.Int(len(batch)),
		attrTraceID.String(sc.TraceID().String()), attrSpanID.String(sc.SpanID().String()))
	for _, r := range batch {
		if r.span != nil && r.span.IsRecording() {
			r.span.AddEvent("ledger.batch", ev)
		}
	}
}
