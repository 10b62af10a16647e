package ledger

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
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

// ArchivedPartition describes one archived month.
type ArchivedPartition struct {
	Name string    `json:"name"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	File string    `json:"file"`
	Rows int64     `json:"rows"`
}

var partitionPattern = regexp.MustCompile(`^entries_y(\d{4})m(\d{2})$`)

// Archive exports every monthly partition that ends at or before `before`
// to a JSON-lines file under dir (fsynced), records per account the last
// archived entry (seq and balances after it) in entry_archives, then
// detaches and drops the partition, all in one database transaction per
// partition: the partition is gone only once its file is durable and the
// checkpoints that keep verification and as-of reads correct are written.
// Balances are unaffected: they live on the account rows.
func Archive(ctx context.Context, pool *pgxpool.Pool, before time.Time, dir string) ([]ArchivedPartition, error) {
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'entries'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var done []ArchivedPartition
	for _, name := range names {
		m := partitionPattern.FindStringSubmatch(name)
		if m == nil {
			continue // the default partition is never archived
		}
		from, _ := time.Parse("2006-01", m[1]+"-"+m[2])
		to := from.AddDate(0, 1, 0)
		if to.After(before) {
			continue
		}
		ap, err := archiveOne(ctx, pool, name, from, to, dir)
		if err != nil {
			return done, fmt.Errorf("archive %s: %w", name, err)
		}
		done = append(done, ap)
	}
	return done, nil
}

func archiveOne(ctx context.Context, pool *pgxpool.Pool, name string, from, to time.Time, dir string) (ArchivedPartition, error) {
	ap := ArchivedPartition{Name: name, From: from, To: to, File: filepath.Join(dir, name+".jsonl")}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Block writers into this month while it is exported and detached.
		if _, err := tx.Exec(ctx, "LOCK TABLE "+name+" IN SHARE MODE"); err != nil {
			return err
		}
		n, err := exportPartition(ctx, tx, name, ap.File)
		if err != nil {
			return err
		}
		ap.Rows = n
		if _, err := tx.Exec(ctx, `INSERT INTO entry_archives AS a (tenant_id, account_id, seq, debits_posted,
				credits_posted, debits_pending, credits_pending, last_entry_at, archived_before)
			SELECT DISTINCT ON (tenant_id, account_id) tenant_id, account_id, seq, debits_posted, credits_posted,
				debits_pending, credits_pending, created_at, $1::timestamptz
			FROM `+name+` ORDER BY tenant_id, account_id, seq DESC
			ON CONFLICT (tenant_id, account_id) DO UPDATE SET seq = excluded.seq,
				debits_posted = excluded.debits_posted, credits_posted = excluded.credits_posted,
				debits_pending = excluded.debits_pending, credits_pending = excluded.credits_pending,
				last_entry_at = excluded.last_entry_at, archived_before = excluded.archived_before
			WHERE a.seq < excluded.seq`, to); err != nil {
			return fmt.Errorf("checkpoints: %w", err)
		}
		for _, sql := range []string{"ALTER TABLE entries DETACH PARTITION " + name, "DROP TABLE " + name} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO archived_partitions (name, range_from, range_to, file, rows)
			VALUES ($1, $2, $3, $4, $5)`, name, from, to, ap.File, n)
		return err
	})
	return ap, err
}

func exportPartition(ctx context.Context, tx pgx.Tx, name, path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	rows, err := tx.Query(ctx, `SELECT row_to_json(e)::text FROM `+name+` e ORDER BY tenant_id, account_id, seq`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return n, err
		}
		if !json.Valid([]byte(line)) {
			return n, fmt.Errorf("row %d is not JSON", n)
		}
		w.WriteString(line)
		w.WriteByte('\n')
		n++
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	if err := w.Flush(); err != nil {
		return n, err
	}
	return n, f.Sync()
}
