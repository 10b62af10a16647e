package export

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
)

// Errors callers test with errors.Is.
var (
	ErrNotFound      = errors.New("export: no such export")
	ErrAccountAbsent = errors.New("export: no such account")
	ErrTooMany       = errors.New("export: too many exports in flight")
	ErrFinished      = errors.New("export: the export has finished")
)

// Settings are the live settings exports follow (a *control.Watcher).
type Settings interface {
	Int(tenant, key string) int64
	Float(tenant, key string) float64
}

// DefaultChunkRows is the rows of one chunk: 10,000 rows × ~200 B ≈ 2 MB
// written and synced per checkpoint, a fraction of a second of work, so a
// crash repeats little and a throttled export moves in small steps.
const DefaultChunkRows = 10_000

// Store keeps export jobs in PostgreSQL.
type Store struct {
	pool     *pgxpool.Pool
	settings Settings
	// ChunkRows is the chunk size of new jobs (0: DefaultChunkRows).
	ChunkRows int
	// Shared puts every job in the normal queue: isolation switched off,
	// for the benchmark that shows what isolation prevents.
	Shared bool
}

// NewStore returns a store on pool following settings.
func NewStore(pool *pgxpool.Pool, settings Settings) *Store {
	return &Store{pool: pool, settings: settings}
}

const jobCols = `tenant_id, id::text, kind, coalesce(account_id, ''), range_from, range_to, format, compression,
	cutoff, chunk_rows, queue, rows_estimated, state, coalesce(claimed_by, ''), attempts, stalled, chunks_done,
	rows_written, file_offset, last_key, hash_state, coalesce(sha256, ''), coalesce(error, ''),
	created_at, started_at, finished_at`

func scanJob(row pgx.Row) (*Job, error) {
	j := &Job{}
	r := &j.Request
	err := row.Scan(&j.Tenant, &j.ID, &r.Kind, &r.AccountID, &r.From, &r.To, &r.Format, &r.Compression,
		&j.Cutoff, &j.ChunkRows, &j.Queue, &j.RowsEstimated, &j.State, &j.ClaimedBy, &j.Attempts, &j.Stalled, &j.ChunksDone,
		&j.RowsWritten, &j.FileOffset, &j.LastKey, &j.HashState, &j.SHA256, &j.Error,
		&j.CreatedAt, &j.StartedAt, &j.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return j, err
}

// Create queues an export of req for tenant, or returns the queued or
// running job of an identical request (created false). It fails with
// ErrAccountAbsent for an account the tenant does not have and ErrTooMany
// when the tenant has exports.max_in_flight exports queued or running.
func (s *Store) Create(ctx context.Context, tenant string, req Request) (job *Job, created bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		job, created, err = s.createTx(ctx, tx, tenant, req)
		return err
	})
	return job, created, err
}

func (s *Store) createTx(ctx context.Context, tx pgx.Tx, tenant string, req Request) (*Job, bool, error) {
	// Serialise the tenant's creations so the in-flight cap and the dedupe
	// hold; NO KEY UPDATE does not block account creation's foreign key.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, tenant); err != nil {
		return nil, false, fmt.Errorf("lock tenant: %w", err)
	}
	digest := req.digest()
	j, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobCols+` FROM export_jobs
		WHERE tenant_id = $1 AND request_digest = $2 AND state IN ('queued', 'running')`, tenant, digest))
	if err == nil {
		return j, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	if req.AccountID != "" {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE tenant_id = $1 AND id = $2)`,
			tenant, req.AccountID).Scan(&ok); err != nil {
			return nil, false, err
		}
		if !ok {
			return nil, false, ErrAccountAbsent
		}
	}
	var inFlight int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM export_jobs WHERE tenant_id = $1 AND state IN ('queued', 'running')`,
		tenant).Scan(&inFlight); err != nil {
		return nil, false, err
	}
	if inFlight >= s.settings.Int(tenant, control.KeyExportMaxInFlight) {
		return nil, false, fmt.Errorf("%w: %d queued or running", ErrTooMany, inFlight)
	}
	j = &Job{Tenant: tenant, ID: ledger.NewID(), Request: req, ChunkRows: s.ChunkRows, State: StateQueued}
	if j.ChunkRows <= 0 {
		j.ChunkRows = DefaultChunkRows
	}
	// The cut-off: this transaction's clock. Writers read the same clock
	// for created_at; the worker waits for writers older than the cut-off
	// before its first chunk (settle).
	if err := tx.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&j.Cutoff); err != nil {
		return nil, false, err
	}
	if j.RowsEstimated, err = estimate(ctx, tx, j); err != nil {
		return nil, false, err
	}
	j.Queue = QueueNormal
	if !s.Shared && j.RowsEstimated > s.settings.Int(tenant, control.KeyExportHugeThreshold) {
		j.Queue = QueueHuge
	}
	err = tx.QueryRow(ctx, `INSERT INTO export_jobs (tenant_id, id, request_digest, kind, account_id, range_from, range_to,
			format, compression, cutoff, chunk_rows, queue, rows_estimated, state)
		VALUES ($1, $2, $3, $4, nullif($5, ''), $6, $7, $8, $9, $10, $11, $12, $13, 'queued') RETURNING created_at`,
		tenant, j.ID, digest, req.Kind, req.AccountID, req.From, req.To, req.Format, req.Compression,
		j.Cutoff, j.ChunkRows, j.Queue, j.RowsEstimated).Scan(&j.CreatedAt)
	if err != nil {
		return nil, false, fmt.Errorf("insert export: %w", err)
	}
	return j, true, nil
}

// estimate asks the planner for the job's row count.
func estimate(ctx context.Context, tx pgx.Tx, j *Job) (int64, error) {
	q, args := estimateSQL(j)
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	var raw []byte
	if err := tx.QueryRow(ctx, q, args...).Scan(&raw); err != nil {
		return 0, fmt.Errorf("estimate rows: %w", err)
	}
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) == 0 {
		return 0, fmt.Errorf("estimate rows: unexpected plan %q", raw)
	}
	return int64(plan[0].Plan.Rows), nil
}

// Get returns tenant's export id; another tenant's export is ErrNotFound.
func (s *Store) Get(ctx context.Context, tenant, id string) (*Job, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	return scanJob(s.pool.QueryRow(ctx, `SELECT `+jobCols+` FROM export_jobs WHERE tenant_id = $1 AND id = $2`, tenant, id))
}

// MaxList bounds one page of List.
const MaxList = 100

// List returns tenant's newest exports, at most limit (≤ MaxList).
func (s *Store) List(ctx context.Context, tenant string, limit int) ([]*Job, error) {
	limit = min(max(limit, 1), MaxList)
	return s.jobs(ctx, `SELECT `+jobCols+` FROM export_jobs WHERE tenant_id = $1
		ORDER BY created_at DESC, id DESC LIMIT $2`, tenant, limit)
}

// jobs runs a query of jobCols rows.
func (s *Store) jobs(ctx context.Context, sql string, args ...any) ([]*Job, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []*Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// Cancel cancels a queued or running export; a finished one is
// ErrFinished (with the job). The worker running it stops at its next
// heartbeat or checkpoint and removes the partial file.
func (s *Store) Cancel(ctx context.Context, tenant, id string) (*Job, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	j, err := scanJob(s.pool.QueryRow(ctx, `UPDATE export_jobs SET state = 'cancelled', finished_at = now(),
			claimed_by = NULL, lease_until = NULL
		WHERE tenant_id = $1 AND id = $2 AND state IN ('queued', 'running') RETURNING `+jobCols, tenant, id))
	if !errors.Is(err, ErrNotFound) {
		return j, err
	}
	if j, err = s.Get(ctx, tenant, id); err != nil {
		return nil, err
	}
	return j, ErrFinished
}

// ChunkReads returns how many times each chunk of an export was read, by
// chunk number (tests and the crash test check "at most twice").
func (s *Store) ChunkReads(ctx context.Context, tenant, id string) (map[int64]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT chunk, reads FROM export_chunk_reads WHERE tenant_id = $1 AND job_id = $2`, tenant, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[int64]int{}
	for rows.Next() {
		var c int64
		var n int
		if err := rows.Scan(&c, &n); err != nil {
			return nil, err
		}
		m[c] = n
	}
	return m, rows.Err()
}

// secret returns the key signing download links, creating it once.
func loadSecret(ctx context.Context, pool *pgxpool.Pool) ([]byte, error) {
	var fresh [32]byte
	if _, err := rand.Read(fresh[:]); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO export_secrets VALUES (1, $1) ON CONFLICT DO NOTHING`, fresh[:]); err != nil {
		return nil, fmt.Errorf("export link key: %w", err)
	}
	var key []byte
	if err := pool.QueryRow(ctx, `SELECT secret FROM export_secrets WHERE id = 1`).Scan(&key); err != nil {
		return nil, fmt.Errorf("export link key: %w", err)
	}
	return key, nil
}

// validID reports whether id looks like an export id (a UUID), so that a
// malformed one is a plain 404 rather than a database error.
func validID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		default:
			return false
		}
	}
	return true
}
