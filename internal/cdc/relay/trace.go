package relay

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing of the change stream (on when Config.TracerProvider is set).
// The unit of work is the Kafka transaction: a root span
// "cdc.kafka_transaction" per Kafka transaction, from the Begin of the
// first PostgreSQL transaction it carries to the confirmation of its LSN,
// with children:
//
//   - "cdc.receive", one per PostgreSQL transaction it carries: from its
//     Begin message to its Commit (receiving, decoding and encoding its
//     changes, which are interleaved change by change; the encoding time is
//     the attribute bulwark.cdc.encode_seconds rather than a span per row;
//     for a large transaction PostgreSQL streamed before its commit, the
//     replay of its spill file at Stream Commit);
//   - "cdc.kafka_commit": committing the Kafka transaction with the
//     checkpoint;
//   - "cdc.lsn_confirm": confirming the LSN to PostgreSQL.
//
// The root span starts at the first event produced, backdated to the Begin
// of its transaction: transactions that produce nothing (heartbeats,
// changes Kafka already holds) make no trace. A session that fails leaves
// its open spans unended (never exported): the failure is in the logs and
// bulwark_cdc_session_restarts_total.

const traceScope = "github.com/bulwark-ledger/bulwark/internal/cdc/relay"

// txnTracing is the tracing state of a session, owned by its goroutine.
type txnTracing struct {
	root    trace.Span    // the open Kafka transaction; nil when none
	receive trace.Span    // the PostgreSQL transaction being received; nil when none
	began   time.Time     // Begin of the PostgreSQL transaction being received
	encode  time.Duration // encoding time of its events so far
	events  int           // its events produced so far
	txns    int           // PostgreSQL transactions in the Kafka transaction
}

func (s *session) traceBegin() {
	if s.r.tracer == nil {
		return
	}
	s.tr.began, s.tr.encode, s.tr.events = time.Now(), 0, 0
}

func (s *session) traceEncodeStart() time.Time {
	if s.r.tracer == nil {
		return time.Time{}
	}
	return time.Now()
}

// traceEncoded counts one encoded event, opening the root and receive
// spans at the first one.
func (s *session) traceEncoded(ctx context.Context, began time.Time) {
	if s.r.tracer == nil {
		return
	}
	s.tr.encode += time.Since(began)
	s.tr.events++
	if s.tr.root == nil {
		// Backdated to the Begin, unless the transaction already went
		// on in the previous Kafka transaction (committed at MaxTxnBytes).
		start := s.tr.began
		if s.tr.receive != nil {
			start = time.Now()
		}
		_, s.tr.root = s.r.tracer.Start(ctx, "cdc.kafka_transaction", trace.WithNewRoot(),
			trace.WithTimestamp(start), trace.WithAttributes(attribute.String("bulwark.cdc.slot", s.cfg.Slot)))
		s.tr.txns = 0
	}
	if s.tr.receive == nil && s.txn != nil {
		_, s.tr.receive = s.r.tracer.Start(trace.ContextWithSpan(ctx, s.tr.root), "cdc.receive", trace.WithTimestamp(s.tr.began),
			trace.WithAttributes(attribute.Int64("bulwark.cdc.xid", int64(s.txn.xid)),
				attribute.String("bulwark.cdc.commit_lsn", s.txn.commitLSN.String())))
		s.tr.txns++
	}
}

// traceEndTxn ends the receive span of t, if it produced anything.
func (s *session) traceEndTxn(t *txnState) {
	if s.r.tracer == nil || s.tr.receive == nil {
		return
	}
	s.tr.receive.SetAttributes(attribute.Int("bulwark.cdc.events", s.tr.events),
		attribute.Float64("bulwark.cdc.encode_seconds", s.tr.encode.Seconds()),
		attribute.Int64("bulwark.cdc.changes", t.pos))
	s.tr.receive.End()
	s.tr.receive = nil
}

// traceStage starts a child span of the open Kafka transaction; the
// returned func ends it with err.
func (s *session) traceStage(ctx context.Context, name string) func(error) {
	if s.r.tracer == nil || s.tr.root == nil {
		return noopDone
	}
	_, span := s.r.tracer.Start(trace.ContextWithSpan(ctx, s.tr.root), name)
	return func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// traceKafkaEnd ends the Kafka transaction's span.
func (s *session) traceKafkaEnd(records int64, err error) {
	if s.r.tracer == nil || s.tr.root == nil {
		return
	}
	s.tr.root.SetAttributes(attribute.Int64("bulwark.cdc.records", records),
		attribute.Int("bulwark.cdc.pg_transactions", s.tr.txns),
		attribute.String("bulwark.cdc.confirmed_lsn", s.acked.String()))
	if err != nil {
		s.tr.root.RecordError(err)
		s.tr.root.SetStatus(codes.Error, err.Error())
	}
	s.tr.root.End()
	s.tr.root = nil
}

// noopDone is traceStage's answer when tracing is off: a package-level
// func, so the untraced path allocates no closure.
func noopDone(error) {}
