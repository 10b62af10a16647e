package export

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// export writes j from its checkpoint to the end, one chunk at a time:
// count the read, read the chunk after the last key, write it, sync the
// file, checkpoint. Memory is one row and the file's write buffer,
// whatever the size of the export.
func (r *Runner) export(ctx context.Context, pool *pgxpool.Pool, j *Job, worker string) error {
	k, ok := kinds[j.Request.Kind]
	if !ok {
		return fmt.Errorf("unknown kind %q", j.Request.Kind)
	}
	path := r.path(j)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	fl, err := openFile(path, j.FileOffset, j.HashState, j.Request.Compression == CompressionGzip)
	if err != nil {
		return err
	}
	defer fl.Close() //nolint:errcheck // synced at each checkpoint; a close error loses nothing recorded
	if j.ChunksDone == 0 {
		if err := r.settle(ctx, pool, j); err != nil {
			return err
		}
	}
	key := j.LastKey
	if len(key) == 0 {
		key = k.firstKey
	}
	enc := newEncoder(j.Request.Format, k.columns)
	q := k.chunkSQL(len(k.chunkArgs(j, key, 0)) - 1)
	c := &chunker{k: k, enc: enc, fl: fl}
	// Reads are counted before they are made: the first of this attempt
	// here, each next one by the checkpoint before it (one statement per
	// chunk, not two). A count is an upper bound on the reads.
	if _, err := pool.Exec(ctx, countReadSQL, j.Tenant, j.ID, j.ChunksDone); err != nil {
		return fmt.Errorf("count chunk read: %w", err)
	}
	for {
		if err := r.waitToken(ctx, j); err != nil {
			return err
		}
		start := time.Now()
		n, next, err := c.read(ctx, pool, q, k.chunkArgs(j, key, j.ChunkRows), j.ChunksDone == 0)
		if err != nil {
			return fmt.Errorf("chunk %d: %w", j.ChunksDone, err)
		}
		wrote := fl.off - j.FileOffset
		j.ChunksDone, j.RowsWritten, j.FileOffset = j.ChunksDone+1, j.RowsWritten+int64(n), fl.off
		if n > 0 {
			key = next
		}
		j.LastKey, j.HashState = key, fl.hashState()
		if err := r.checkpoint(ctx, pool, j, worker, n == j.ChunkRows); err != nil {
			return fmt.Errorf("checkpoint chunk %d: %w", j.ChunksDone-1, err)
		}
		j.Stalled = 0 // as the checkpoint recorded
		r.m.chunk(j.Queue, n, wrote, time.Since(start))
		if r.afterChunk != nil {
			r.afterChunk(j)
		}
		if n < j.ChunkRows {
			break
		}
	}
	j.SHA256 = fl.sum()
	return owned(ctx, pool, j, worker, `state = 'succeeded', finished_at = now(), claimed_by = NULL, lease_until = NULL,
		sha256 = $4, error = NULL`, j.SHA256)
}

const countReadSQL = `INSERT INTO export_chunk_reads VALUES ($1, $2, $3, 1)
	ON CONFLICT (tenant_id, job_id, chunk) DO UPDATE SET reads = export_chunk_reads.reads + 1`

// checkpoint records j's progress if this worker still holds it (else
// errLost) and, when more chunks follow, counts the read of the next one.
func (r *Runner) checkpoint(ctx context.Context, pool *pgxpool.Pool, j *Job, worker string, more bool) error {
	var n int
	err := pool.QueryRow(ctx, `WITH cp AS (
			UPDATE export_jobs SET chunks_done = $4, rows_written = $5, file_offset = $6, last_key = $7,
				hash_state = $8, lease_until = greatest(lease_until, now() + $9::interval), stalled = 0
			WHERE tenant_id = $1 AND id = $2 AND claimed_by = $3 AND state = 'running' RETURNING tenant_id, id),
		counted AS (
			INSERT INTO export_chunk_reads SELECT tenant_id, id, $4, 1 FROM cp WHERE $10::bool
			ON CONFLICT (tenant_id, job_id, chunk) DO UPDATE SET reads = export_chunk_reads.reads + 1)
		SELECT count(*) FROM cp`,
		j.Tenant, j.ID, worker, j.ChunksDone, j.RowsWritten, j.FileOffset, j.LastKey, j.HashState,
		r.cfg.Lease.String(), more).Scan(&n)
	if err != nil {
		return err
	}
	if n == 0 {
		return errLost
	}
	return nil
}

// chunker reads chunks into the file, reusing its buffers.
type chunker struct {
	k   *kind
	enc *encoder
	fl  *file
	buf []byte
	key [][]byte
}

// read writes one chunk (with the header first when first) and returns
// its rows and the key of its last row. The file is synced when it
// returns without error.
func (c *chunker) read(ctx context.Context, pool *pgxpool.Pool, q string, args []any, first bool) (int, []string, error) {
	c.fl.beginChunk()
	if first {
		c.buf = c.enc.header(c.buf[:0])
		if _, err := c.fl.Write(c.buf); err != nil {
			return 0, nil, err
		}
	}
	rows, err := pool.Query(ctx, q, args...)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	if c.key == nil {
		c.key = make([][]byte, len(c.k.keyCols))
	}
	n := 0
	for rows.Next() {
		vals := rows.RawValues()
		c.buf = c.enc.row(c.buf[:0], vals)
		if _, err := c.fl.Write(c.buf); err != nil {
			return 0, nil, err
		}
		for i, col := range c.k.keyCols {
			c.key[i] = append(c.key[i][:0], vals[col]...)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, nil, err
	}
	if err := c.fl.endChunk(); err != nil {
		return 0, nil, err
	}
	next := make([]string, len(c.key))
	for i, b := range c.key {
		next[i] = string(b)
	}
	return n, next, nil
}

// settle waits until every ledger write that can hold rows with
// created_at at or before j's cut-off has ended. A ledger batch reads its
// created_at from clock_timestamp() inside its transaction, after locking
// its accounts (so it holds a transaction id): a transaction whose
// created_at ≤ cut-off started before the cut-off. Once no client backend
// holding a transaction id started at or before the cut-off remains, the
// rows at or before the cut-off are exactly the committed ones, and every
// chunk, in any attempt, sees the same set. The wait is bounded by
// SettleMax (past the ledger's commit timeout; only a foreign long
// transaction can reach it, and it is logged).
func (r *Runner) settle(ctx context.Context, pool *pgxpool.Pool, j *Job) error {
	deadline := time.Now().Add(r.cfg.SettleMax)
	for {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
				AND backend_xid IS NOT NULL AND xact_start <= $1`, j.Cutoff).Scan(&n)
		if err != nil {
			return fmt.Errorf("settle: %w", err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			r.log.Warn("export settle: transactions older than the cut-off still open; going on",
				"id", j.ID, "transactions", n, "waited", r.cfg.SettleMax)
			return nil
		}
		sleep(ctx, 20*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
