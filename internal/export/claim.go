package export

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/control"
)

// claimScanMax bounds the ready jobs one claim inspects: enough to step
// over the jobs of tenants at their cap without scanning the whole queue.
const claimScanMax = 64

// claim takes the oldest ready job of queue that the caps allow: queued,
// or running with an expired lease (its worker died; it resumes from its
// checkpoint). The queue's row lock serialises claims of one queue across
// processes, so the running caps hold exactly. A job claimed maxAttempts
// times since its last checkpoint is failed instead. It returns nil when
// nothing can be claimed.
func claim(ctx context.Context, pool *pgxpool.Pool, queue, worker string, lease time.Duration,
	maxAttempts int, s Settings,
) (*Job, error) {
	var job *Job
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM export_queues WHERE name = $1 FOR UPDATE`, queue); err != nil {
			return fmt.Errorf("lock queue: %w", err)
		}
		running, total, err := runningByTenant(ctx, tx, queue)
		if err != nil {
			return err
		}
		if queue == QueueHuge && total >= s.Int(control.GlobalTenant, control.KeyExportHugeMaxRunning) {
			return nil
		}
		id, tenant, stalled, err := pick(ctx, tx, queue, running, s)
		if err != nil || id == "" {
			return err
		}
		if stalled >= maxAttempts {
			_, err := tx.Exec(ctx, `UPDATE export_jobs SET state = 'failed', finished_at = now(), claimed_by = NULL,
					lease_until = NULL,
					error = format('gave up after %s attempts without progress; last: %s', stalled, coalesce(error, 'worker lost'))
				WHERE tenant_id = $1 AND id = $2`, tenant, id)
			return err
		}
		job, err = scanJob(tx.QueryRow(ctx, `UPDATE export_jobs SET state = 'running', claimed_by = $3,
				lease_until = now() + $4::interval, attempts = attempts + 1, stalled = stalled + 1,
				started_at = coalesce(started_at, now())
			WHERE tenant_id = $1 AND id = $2 RETURNING `+jobCols, tenant, id, worker, lease.String()))
		return err
	})
	return job, err
}

func runningByTenant(ctx context.Context, tx pgx.Tx, queue string) (map[string]int64, int64, error) {
	rows, err := tx.Query(ctx, `SELECT tenant_id, count(*) FROM export_jobs
		WHERE queue = $1 AND state = 'running' AND lease_until >= now() GROUP BY tenant_id`, queue)
	if err != nil {
		return nil, 0, err
	}
	m := map[string]int64{}
	var total int64
	for rows.Next() {
		var t string
		var n int64
		if err := rows.Scan(&t, &n); err != nil {
			return nil, 0, err
		}
		m[t], total = n, total+n
	}
	return m, total, rows.Err()
}

// pick returns the first ready job whose tenant is under its cap.
func pick(ctx context.Context, tx pgx.Tx, queue string, running map[string]int64, s Settings) (id, tenant string, stalled int, err error) {
	rows, err := tx.Query(ctx, `SELECT tenant_id, id::text, stalled FROM export_jobs
		WHERE queue = $1 AND (state = 'queued' OR (state = 'running' AND lease_until < now()))
		ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`, queue, claimScanMax)
	if err != nil {
		return "", "", 0, err
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(&tenant, &id, &stalled); err != nil {
			return "", "", 0, err
		}
		if queue != QueueHuge || running[tenant] < s.Int(tenant, control.KeyExportHugeMaxRunningEach) {
			return id, tenant, stalled, nil
		}
	}
	return "", "", 0, rows.Err()
}

// errLost: the job is no longer this worker's (cancelled, or its lease
// was taken over after it expired).
var errLost = errors.New("export: job lost (cancelled or lease taken over)")

// owned runs a guarded update of a job this worker holds; no row means
// errLost.
func owned(ctx context.Context, pool *pgxpool.Pool, j *Job, worker, set string, args ...any) error {
	tag, err := pool.Exec(ctx, `UPDATE export_jobs SET `+set+`
		WHERE tenant_id = $1 AND id = $2 AND claimed_by = $3 AND state = 'running'`,
		append([]any{j.Tenant, j.ID, worker}, args...)...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errLost
	}
	return nil
}
