package export

import (
	"context"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/control"
)

// sweepBatchMax bounds the files one sweep removes; the next sweep goes on.
const sweepBatchMax = 100

// sweep runs every SweepEvery until ctx ends: queue metrics, then
// retention (succeeded exports older than exports.retention_hours become
// expired and lose their file) and the files of cancelled or failed
// exports that their worker could not remove.
func (r *Runner) sweep(ctx context.Context) {
	for ctx.Err() == nil {
		pool := r.pools[QueueNormal]
		if err := r.m.refresh(ctx, pool); err != nil && ctx.Err() == nil {
			r.log.Warn("export metrics", "err", err)
		}
		if err := r.expire(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("export retention", "err", err)
		}
		sleep(ctx, r.cfg.SweepEvery)
	}
}

// expire marks expired first, then removes the file: a download that
// starts after the mark is refused; one already streaming keeps its open
// file (removal unlinks the name only).
func (r *Runner) expire(ctx context.Context) error {
	hours := r.settings.Float(control.GlobalTenant, control.KeyExportRetentionHours)
	keep := time.Duration(hours * float64(time.Hour))
	rows, err := r.pools[QueueNormal].Query(ctx, `UPDATE export_jobs j SET
			state = CASE WHEN state = 'succeeded' THEN 'expired' ELSE state END,
			file_offset = CASE WHEN state = 'succeeded' THEN file_offset ELSE 0 END
		FROM (SELECT tenant_id, id FROM export_jobs
			WHERE (state = 'succeeded' AND finished_at < now() - $1::interval)
				OR (state IN ('cancelled', 'failed') AND file_offset > 0 AND finished_at < now() - interval '1 minute')
			LIMIT $2 FOR UPDATE SKIP LOCKED) d
		WHERE j.tenant_id = d.tenant_id AND j.id = d.id
		RETURNING j.tenant_id, j.id::text, j.format, j.compression, j.state`, keep.String(), sweepBatchMax)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var j Job
		var st string
		if err := rows.Scan(&j.Tenant, &j.ID, &j.Request.Format, &j.Request.Compression, &st); err != nil {
			return err
		}
		removeFile(r.path(&j))
		if st == StateExpired {
			r.m.expired.Inc()
		}
	}
	return rows.Err()
}
