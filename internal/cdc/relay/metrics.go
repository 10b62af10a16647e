package relay

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events          *prometheus.CounterVec
	kafkaTxns       *prometheus.CounterVec
	kafkaTxnRecords prometheus.Histogram
	restarts        prometheus.Counter
	heartbeats      prometheus.Counter
	snapshotRows    prometheus.Counter
	walBytesBehind  prometheus.Gauge
	slotRetained    prometheus.Gauge
	secondsBehind   prometheus.Gauge
	lastCommit      prometheus.Gauge
	openStreams     prometheus.Gauge
	skipped         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_cdc_events_produced_total", Help: "Change events produced into Kafka transactions, by operation (an aborted transaction's events are produced again).",
		}, []string{"op"}),
		kafkaTxns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_cdc_kafka_transactions_total", Help: "Kafka transactions ended, by result (commit, error).",
		}, []string{"result"}),
		kafkaTxnRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bulwark_cdc_kafka_transaction_records", Help: "Records per committed Kafka transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_cdc_session_restarts_total", Help: "Relay sessions restarted after an error.",
		}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_cdc_heartbeats_total", Help: "Heartbeat messages written to the WAL.",
		}),
		snapshotRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_cdc_snapshot_rows_total", Help: "Snapshot rows committed to Kafka.",
		}),
		walBytesBehind: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulwark_cdc_wal_bytes_behind", Help: "WAL bytes between the server's current position and the slot's confirmed position.",
		}),
		slotRetained: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulwark_cdc_slot_retained_wal_bytes", Help: "WAL bytes the slot makes the server keep (current position minus the slot's restart position): disk the server cannot recycle.",
		}),
		secondsBehind: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulwark_cdc_seconds_behind", Help: "Seconds between the commit of the last relayed transaction and its Kafka commit.",
		}),
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulwark_cdc_last_commit_relayed_timestamp_seconds", Help: "PostgreSQL commit time of the last transaction committed to Kafka.",
		}),
		openStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulwark_cdc_open_streamed_transactions", Help: "In-progress streamed transactions spilled to disk.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_cdc_redelivered_changes_skipped_total", Help: "Changes re-sent by PostgreSQL after a restart and skipped because Kafka already holds them.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.kafkaTxns, m.kafkaTxnRecords, m.restarts, m.heartbeats, m.snapshotRows,
			m.walBytesBehind, m.slotRetained, m.secondsBehind, m.lastCommit, m.openStreams, m.skipped)
	}
	// Both results exist from the start, so that an alert's error ratio
	// reads 0 rather than nothing before the first error.
	m.kafkaTxns.WithLabelValues("commit")
	m.kafkaTxns.WithLabelValues("error")
	return m
}
