package admission

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

const traceScope = "github.com/bulwark-ledger/bulwark/internal/admission"

// admitTraced is Admit inside a span "admission" (child of ctx's span)
// recording the route, priority, stage and outcome, when tracing is on.
// The span covers the decision only: the handler runs after it ended, as
// a sibling under the request span.
func (c *Controller) admitTraced(ctx context.Context, req Request) (Ticket, error) {
	if c.tracer == nil {
		return c.Admit(req)
	}
	_, span := c.tracer.Start(ctx, "admission", trace.WithAttributes(attribute.String("bulwark.admission.route", req.Route)))
	defer span.End()
	t, err := c.Admit(req)
	stage := c.Stage()
	var rej *Rejection
	switch {
	case err == nil:
		span.SetAttributes(attribute.String("bulwark.admission.outcome", "admitted"),
			attribute.String("bulwark.admission.priority", t.Priority().String()),
			attribute.String("bulwark.admission.stage", stage.String()))
	case errors.As(err, &rej):
		span.SetAttributes(attribute.String("bulwark.admission.outcome", "rejected"),
			attribute.String("bulwark.admission.reason", rej.Reason.String()),
			attribute.String("bulwark.admission.priority", rej.Priority.String()),
			attribute.String("bulwark.admission.stage", rej.Stage.String()),
			attribute.Int64("bulwark.admission.retry_after_ms", rej.RetryAfter.Milliseconds()))
		span.SetStatus(codes.Error, "rejected: "+rej.Reason.String())
	default:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return t, err
}
