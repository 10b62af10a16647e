package ledger

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type pipelineMetrics struct {
	batches      prometheus.Counter
	transactions prometheus.Counter
	failed       prometheus.Counter
	isolated     prometheus.Counter
	rejected     prometheus.Counter
	queued       prometheus.Gauge
	batchSize    prometheus.Histogram
	batchSeconds prometheus.Histogram
	// The async journal's, here so that they share the pipeline's
	// registry (every process with the pipeline has the journal).
	journalAccepted prometheus.Counter
	journalOldest   prometheus.Gauge
}

func newPipelineMetrics(reg prometheus.Registerer) *pipelineMetrics {
	m := &pipelineMetrics{
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_ledger_batches_total",
			Help: "Batches committed by the ledger commit pipeline."}),
		transactions: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_ledger_batch_transactions_total",
			Help: "Transactions (committed, replayed or rejected) processed in committed batches."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_ledger_batch_failures_total",
			Help: "Batches that failed as a whole (database errors after retries)."}),
		isolated: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_ledger_isolated_requests_total",
			Help: "Requests refused by the database and isolated from their batch (the rest of the batch committed)."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_ledger_pipeline_overload_total",
			Help: "Requests refused because the pipeline queue was full (HTTP 503)."}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_ledger_pipeline_queued_transactions",
			Help: "Transactions submitted and not yet answered."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bulwark_ledger_batch_transactions",
			Help: "Transactions per committed batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bulwark_ledger_batch_seconds",
			Help: "Time to apply and commit one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		journalAccepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_ledger_journal_accepted_total",
			Help: "Async requests journaled (answered 202), resends of an entry excluded."}),
		journalOldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_ledger_journal_oldest_pending_seconds",
			Help: "Age of the oldest journaled request not yet applied, as this process's applier (workers role) last polled; 0 when none waits."}),
	}
	if reg != nil {
		reg.MustRegister(m.batches, m.transactions, m.failed, m.isolated, m.rejected, m.queued, m.batchSize, m.batchSeconds,
			m.journalAccepted, m.journalOldest)
	}
	return m
}

func (m *pipelineMetrics) observe(requests, txs int, d time.Duration) {
	m.batches.Inc()
	m.transactions.Add(float64(txs))
	m.batchSize.Observe(float64(txs))
	m.batchSeconds.Observe(d.Seconds())
}
