package features

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics of the engine. Label cardinality is bounded: task gauges carry
// (task, tenant, partition) only while a task is unfinished (the series
// are deleted when it completes), the rate gauge (task, tenant) only for
// pairs the last task scan found work for, consumer lag carries (topic, partition)
// of the partitions this process owns, and nothing else has a tenant label.
type metrics struct {
	applied       *prometheus.CounterVec // source
	deduped       prometheus.Counter
	late          prometheus.Counter
	refused       prometheus.Counter
	entitiesKnown prometheus.Gauge
	batchRecords  prometheus.Histogram
	commitSeconds prometheus.Histogram
	fenced        prometheus.Counter
	consumerLag   *prometheus.GaugeVec // topic, partition
	taskLagEvents *prometheus.GaugeVec // task, tenant, partition
	taskLagSecs   *prometheus.GaugeVec // task, tenant, partition
	taskEvents    *prometheus.CounterVec
	taskRate      *prometheus.GaugeVec // task, tenant: only pairs with unfinished work
	detailSent    prometheus.Counter
	tileWrites    *prometheus.CounterVec // path
	// taskLockTimeouts counts chunks that gave up waiting for a row lock
	// the live path held (see Engine.chunk), by task.
	taskLockTimeouts *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		applied: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_features_events_applied_total",
			Help: "Events aggregated by the live path, by source (events, ledger)."}, []string{"source"}),
		deduped: f.NewCounter(prometheus.CounterOpts{Name: "bulwark_features_events_deduped_total",
			Help: "Tenant events whose id was applied before (counted once)."}),
		late: f.NewCounter(prometheus.CounterOpts{Name: "bulwark_features_events_late_total",
			Help: "Tenant events older than features.allowed_lateness_seconds at acceptance: dropped, not aggregated."}),
		refused: f.NewCounter(prometheus.CounterOpts{Name: "bulwark_features_entities_refused_total",
			Help: "Entity updates not aggregated because the tenant tracks features.max_entities entities already."}),
		entitiesKnown: f.NewGauge(prometheus.GaugeOpts{Name: "bulwark_features_entities_known",
			Help: "Entities this process's live path knows are tracked durably (its admission does not probe them)."}),
		batchRecords: f.NewHistogram(prometheus.HistogramOpts{Name: "bulwark_features_batch_records",
			Help: "Records applied per live transaction (one or more partitions).", Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		commitSeconds: f.NewHistogram(prometheus.HistogramOpts{Name: "bulwark_features_commit_seconds",
			Help: "Duration of one live transaction (tiles, event log, positions of its partitions).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		fenced: f.NewCounter(prometheus.CounterOpts{Name: "bulwark_features_fenced_total",
			Help: "Batches rolled back because another member advanced the partition first (rebalance)."}),
		consumerLag: f.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_features_consumer_lag_records",
			Help: "Records of a source partition not yet applied by this process (high watermark - position)."}, []string{"topic", "partition"}),
		taskLagEvents: f.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_features_task_lag_events",
			Help: "Events a backfill, recompute or velocity-detail task partition still has to process."}, []string{"task", "tenant", "partition"}),
		taskLagSecs: f.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_features_task_lag_seconds",
			Help: "Age of the oldest event a task partition still has to process, relative to its start (detail: to now)."}, []string{"task", "tenant", "partition"}),
		taskRate: f.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_features_task_rate_per_partition",
			Help: "Live rate setting of a task type for a tenant (tasks.<task>.rate_per_partition, tokens (chunks) per second per partition; 0: paused), while the tenant has unfinished work of that task."}, []string{"task", "tenant"}),
		taskEvents: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_features_task_events_total",
			Help: "Events processed by background tasks, by task."}, []string{"task"}),
		taskLockTimeouts: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_features_task_lock_timeouts_total",
			Help: "Task chunks rolled back after waiting too long for a row lock the live path held, by task."}, []string{"task"}),
		detailSent: f.NewCounter(prometheus.CounterOpts{Name: "bulwark_features_detail_records_total",
			Help: "Velocity detail records produced to the detail topic."}),
		tileWrites: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_features_tile_writes_total",
			Help: "Tile rows written by the live path, by path: cached (updated from the tile cache, no read), inserted (new row), " +
				"stale (a cached row another writer changed: redone on the locking path), locked (read FOR UPDATE, then merged)."}, []string{"path"}),
	}
}
