package features

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/control"
)

// TaskRow is the state of one tenant × task × partition, for `bulwark
// features tasks`: what an operator reads before reopening a paused task.
type TaskRow struct {
	Tenant    string  `json:"tenant"`
	Task      string  `json:"task"`
	Feature   string  `json:"feature,omitempty"` // backfill and recompute
	Version   int32   `json:"version,omitempty"`
	Partition int32   `json:"partition"`
	Rate      float64 `json:"rate_per_sec"` // tokens (chunks) per second
	Paused    bool    `json:"paused"`
	Done      int64   `json:"done_events"`
	Total     int64   `json:"total_events"` // -1: not counted yet
	LagEvents int64   `json:"lag_events"`
	LagSecs   float64 `json:"lag_seconds"`
	// ETA in seconds at the current rate; -1 when paused or unknown.
	ETA   float64 `json:"eta_seconds"`
	Owner string  `json:"owner,omitempty"`
}

// RateFunc returns a tenant's rate of a task (tokens per second).
type RateFunc func(tenant, task string) float64

// ControlRates reads the rates from a settings snapshot.
func ControlRates(s *control.Snapshot) RateFunc {
	return func(tenant, task string) float64 { return s.Float(tenant, control.TaskRateKey(task)) }
}

// Tasks lists every unfinished task partition: backfill and recompute of
// building versions, and velocity detail records waiting in the outbox.
// chunkEvents and detailChunk are the task units (Config.ChunkEvents,
// Config.DetailChunk) used for the ETA.
func Tasks(ctx context.Context, pool *pgxpool.Pool, rates RateFunc, chunkEvents, detailChunk int, now time.Time) ([]TaskRow, error) {
	rows, err := pool.Query(ctx, `SELECT p.tenant_id, p.task, p.name, p.version, p.partition, p.done_events,
			coalesce(p.total_events, -1), v.cutoff_at, p.cursor_time, p.lease_owner
		FROM feature_task_parts p JOIN feature_versions v USING (tenant_id, name, version)
		WHERE NOT p.done AND v.state = 'building' ORDER BY 1, 2, 3, 4, 5`)
	if err != nil {
		return nil, fmt.Errorf("task partitions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TaskRow, error) {
		var t TaskRow
		var cutoff time.Time
		var cursor *time.Time
		if err := r.Scan(&t.Tenant, &t.Task, &t.Feature, &t.Version, &t.Partition, &t.Done, &t.Total, &cutoff, &cursor, &t.Owner); err != nil {
			return t, err
		}
		t.LagEvents = max(t.Total-t.Done, 0)
		switch {
		case cursor != nil:
			t.LagSecs = max(cutoff.Sub(*cursor).Seconds(), 0)
		case t.Total != 0:
			t.LagSecs = -1 // not started: age unknown until the first chunk
		}
		t.finish(rates, chunkEvents)
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	rows, err = pool.Query(ctx, `SELECT tenant_id, part, count(*), min(created_at) FROM feature_detail_outbox
		GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("detail outbox: %w", err)
	}
	details, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TaskRow, error) {
		t := TaskRow{Task: control.TaskVelocityDetail}
		var oldest time.Time
		if err := r.Scan(&t.Tenant, &t.Partition, &t.LagEvents, &oldest); err != nil {
			return t, err
		}
		t.Total, t.LagSecs = t.LagEvents, max(now.Sub(oldest).Seconds(), 0)
		t.finish(rates, detailChunk)
		return t, nil
	})
	return append(out, details...), err
}

func (t *TaskRow) finish(rates RateFunc, unit int) {
	t.Rate = rates(t.Tenant, t.Task)
	t.Paused = t.Rate <= 0
	t.ETA = -1
	if !t.Paused && t.Total >= 0 {
		t.ETA = float64(t.LagEvents) / (t.Rate * float64(unit))
	}
}
