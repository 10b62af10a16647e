package export

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics of the export workers, by queue (normal, huge). Queue depth,
// age and running jobs come from the jobs table (every process's jobs),
// refreshed by the sweeper; the rest counts this process's work.
type metrics struct {
	depth, age, running *prometheus.GaugeVec
	busy                *prometheus.GaugeVec
	rows, bytes         *prometheus.CounterVec
	chunkSecs           *prometheus.HistogramVec
	failures, jobs      *prometheus.CounterVec
	expired             prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, pools map[string]*pgxpool.Pool) *metrics {
	f := promauto.With(reg)
	q := []string{"queue"}
	m := &metrics{
		depth: f.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_export_queue_depth",
			Help: "Exports queued (not yet claimed), by queue."}, q),
		age: f.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_export_queue_age_seconds",
			Help: "Age of the oldest queued export, by queue (0: none queued)."}, q),
		running: f.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_export_running",
			Help: "Exports running with a live lease, in all processes, by queue."}, q),
		busy: f.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_export_workers_busy",
			Help: "Workers of this process exporting a job, by queue."}, q),
		rows: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_export_rows_total",
			Help: "Rows written to export files (rate: rows/s), by queue."}, q),
		bytes: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_export_bytes_total",
			Help: "Bytes written to export files, by queue."}, q),
		chunkSecs: f.NewHistogramVec(prometheus.HistogramOpts{Name: "bulwark_export_chunk_seconds",
			Help:    "Time to read, write and sync one chunk, by queue.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, q),
		failures: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_export_attempt_failures_total",
			Help: "Export attempts that failed with an error (retried from the checkpoint until the attempt cap), by queue."}, q),
		jobs: f.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_export_jobs_total",
			Help: "Export runs ended by this process, by queue and outcome (succeeded, failed, lost)."}, []string{"queue", "outcome"}),
		expired: f.NewCounter(prometheus.CounterOpts{Name: "bulwark_export_expired_total",
			Help: "Export files removed by retention."}),
	}
	for name, p := range pools {
		stat := func(fn func(s *pgxpool.Stat) int32) func() float64 {
			return func() float64 { return float64(fn(p.Stat())) }
		}
		l := prometheus.Labels{"pool": name}
		f.NewGaugeFunc(prometheus.GaugeOpts{Name: "bulwark_export_pool_acquired_conns", ConstLabels: l,
			Help: "Connections in use in an export database pool."}, stat((*pgxpool.Stat).AcquiredConns))
		f.NewGaugeFunc(prometheus.GaugeOpts{Name: "bulwark_export_pool_max_conns", ConstLabels: l,
			Help: "Bound of an export database pool."}, stat((*pgxpool.Stat).MaxConns))
		f.NewGaugeFunc(prometheus.GaugeOpts{Name: "bulwark_export_pool_waiting", ConstLabels: l,
			Help: "Acquires waiting for a connection of an export database pool."},
			func() float64 { return float64(p.Stat().EmptyAcquireCount()) })
	}
	// Every series at 0 from the start: rate() and increase() in alerts
	// then see the first failure instead of a series that appears at 1.
	for _, name := range []string{QueueNormal, QueueHuge} {
		m.depth.WithLabelValues(name)
		m.running.WithLabelValues(name)
		m.age.WithLabelValues(name)
		m.failures.WithLabelValues(name)
		for _, o := range []string{StateSucceeded, StateFailed, "lost"} {
			m.jobs.WithLabelValues(name, o)
		}
	}
	return m
}

func (m *metrics) chunk(queue string, rows int, bytes int64, d time.Duration) {
	m.rows.WithLabelValues(queue).Add(float64(rows))
	m.bytes.WithLabelValues(queue).Add(float64(bytes))
	m.chunkSecs.WithLabelValues(queue).Observe(d.Seconds())
}

// refresh reads queue depth, age and running jobs from the table.
func (m *metrics) refresh(ctx context.Context, pool *pgxpool.Pool) error {
	rows, err := pool.Query(ctx, `SELECT q.name,
			count(*) FILTER (WHERE j.state = 'queued'),
			coalesce(extract(epoch FROM now() - min(j.created_at) FILTER (WHERE j.state = 'queued')), 0)::float8,
			count(*) FILTER (WHERE j.state = 'running' AND j.lease_until >= now())
		FROM export_queues q LEFT JOIN export_jobs j ON j.queue = q.name AND j.state IN ('queued', 'running')
		GROUP BY q.name`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var q string
		var depth, running int64
		var age float64
		if err := rows.Scan(&q, &depth, &age, &running); err != nil {
			return err
		}
		m.depth.WithLabelValues(q).Set(float64(depth))
		m.age.WithLabelValues(q).Set(age)
		m.running.WithLabelValues(q).Set(float64(running))
	}
	return rows.Err()
}
