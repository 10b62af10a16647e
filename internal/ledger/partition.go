package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Entries are range-partitioned by month (UTC). A default partition catches
// anything outside the monthly ones so an insert never fails for want of a
// partition; the partitioner keeps the current and next monthsAhead months
// created ahead of time so the default partition stays empty.
const monthsAhead = 2

func partitionName(month time.Time) string {
	return fmt.Sprintf("entries_y%04dm%02d", month.Year(), month.Month())
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// EnsurePartitions creates the monthly partitions from now's month through
// monthsAhead months later. It is idempotent and safe to run concurrently
// (a lost creation race is ignored).
func EnsurePartitions(ctx context.Context, pool *pgxpool.Pool, now time.Time) error {
	m := monthStart(now)
	for i := 0; i <= monthsAhead; i++ {
		from, to := m.AddDate(0, i, 0), m.AddDate(0, i+1, 0)
		name := partitionName(from)
		var exists bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		sql := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF entries FOR VALUES FROM ('%s') TO ('%s')",
			name, from.Format(time.RFC3339), to.Format(time.RFC3339))
		if _, err := pool.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create partition %s: %w", name, err)
		}
	}
	return nil
}

// Partitioner runs EnsurePartitions every hour.
type Partitioner struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// NewPartitioner returns a partitioner.
func NewPartitioner(pool *pgxpool.Pool, log *slog.Logger) *Partitioner {
	return &Partitioner{pool: pool, log: log}
}

// Run keeps partitions ahead until ctx ends.
func (p *Partitioner) Run(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := EnsurePartitions(ctx, p.pool, time.Now()); err != nil && ctx.Err() == nil {
			p.log.Warn("ensure entry partitions", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
