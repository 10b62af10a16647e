package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// JournalState is the state of an async request (the journal.state
// column): accepted until the applier finishes it, then applied (at least
// one of its transactions committed) or rejected (none did).
type JournalState string

// Journal states.
const (
	JournalAccepted JournalState = "accepted"
	JournalApplied  JournalState = "applied"
	JournalRejected JournalState = "rejected"
)

// JournalEntry is the status of an async request.
type JournalEntry struct {
	ID         string          `json:"id"`
	State      JournalState    `json:"state"`
	AcceptedAt time.Time       `json:"accepted_at"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Results    json.RawMessage `json:"results,omitempty"`
}

// Journal is the async (pseudo-synchronous) mode: Accept makes a request
// durable and returns at once; the applier runs accepted requests through
// the same pipeline, and the outcome is recorded in the database
// transaction that applies them (see queueJournal), so after a crash every
// accepted request is either applied with its outcome or still accepted and
// re-driven; never both, never twice.
type Journal struct {
	pool *pgxpool.Pool
	pipe *Pipeline
	log  *slog.Logger
	wake chan struct{}
}

// NewJournal returns a journal feeding pipe.
func NewJournal(pool *pgxpool.Pool, pipe *Pipeline, log *slog.Logger) *Journal {
	return &Journal{pool: pool, pipe: pipe, log: log, wake: make(chan struct{}, 1)}
}

// Accept journals b. A resend with the same idempotency keys and body
// returns the first entry; the same keys with another body is
// CodeIdempotencyConflict. The zero Batch is refused with a *Error.
func (j *Journal) Accept(ctx context.Context, tenant string, b Batch) (JournalEntry, bool, error) {
	if b.Len() == 0 {
		return JournalEntry{}, false, reject(CodeInvalid, "a batch needs at least one transaction")
	}
	keys := make([]string, b.Len())
	for i := range b.txs {
		keys[i] = b.txs[i].IdempotencyKey
	}
	if err := j.checkKeys(ctx, tenant, b, keys); err != nil {
		return JournalEntry{}, false, err
	}
	body, err := json.Marshal(BatchInput{Transactions: b.txs})
	if err != nil {
		return JournalEntry{}, false, err
	}
	digest := sha256.Sum256(body)
	key := strings.Join(keys, "\x1f")
	e := JournalEntry{ID: NewID(), State: JournalAccepted}
	err = j.pool.QueryRow(ctx, `INSERT INTO journal (tenant_id, id, idempotency_key, request_digest, request, state)
		VALUES ($1, $2, $3, $4, $5, 'accepted') RETURNING accepted_at`, tenant, e.ID, key, digest[:], string(body)).Scan(&e.AcceptedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		var old []byte
		var id string
		if err := j.pool.QueryRow(ctx, `SELECT id::text, request_digest FROM journal WHERE tenant_id = $1 AND idempotency_key = $2`,
			tenant, key).Scan(&id, &old); err != nil {
			return JournalEntry{}, false, fmt.Errorf("journal: read existing: %w", err)
		}
		if string(old) != string(digest[:]) {
			return JournalEntry{}, false, reject(CodeIdempotencyConflict, "these idempotency keys were journaled with a different body")
		}
		e, err := j.Status(ctx, tenant, id)
		return e, false, err
	}
	if err != nil {
		return JournalEntry{}, false, fmt.Errorf("journal: accept: %w", err)
	}
	j.pipe.metrics.journalAccepted.Inc()
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return e, true, nil
}

// checkKeys refuses, before anything is journaled, a request whose
// idempotency key already names a different committed transaction.
func (j *Journal) checkKeys(ctx context.Context, tenant string, b Batch, keys []string) error {
	rows, err := j.pool.Query(ctx, `SELECT idempotency_key, request_digest FROM transactions
		WHERE tenant_id = $1 AND idempotency_key = ANY($2)`, tenant, keys)
	if err != nil {
		return fmt.Errorf("journal: check keys: %w", err)
	}
	defer rows.Close()
	digests := make(map[string][]byte)
	for rows.Next() {
		var k string
		var d []byte
		if err := rows.Scan(&k, &d); err != nil {
			return err
		}
		digests[k] = d
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for i, k := range keys {
		if d, ok := digests[k]; ok {
			if want := b.digests[i]; string(d) != string(want[:]) {
				e := reject(CodeIdempotencyConflict, "idempotency key %q was used for a different transaction", k)
				e.Index = i
				return e
			}
		}
	}
	return nil
}

// Status reads an entry.
func (j *Journal) Status(ctx context.Context, tenant, id string) (JournalEntry, error) {
	e := JournalEntry{ID: id}
	if !uuidPattern.MatchString(id) {
		return e, reject(CodeJournalNotFound, "no journal entry %q", id)
	}
	var outcome []byte
	err := j.pool.QueryRow(ctx, `SELECT state, accepted_at, finished_at, outcome FROM journal
		WHERE tenant_id = $1 AND id = $2`, tenant, id).Scan(&e.State, &e.AcceptedAt, &e.FinishedAt, &outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, reject(CodeJournalNotFound, "no journal entry %q", id)
	}
	if err != nil {
		return e, fmt.Errorf("journal: status: %w", err)
	}
	e.Results = outcome
	return e, nil
}

// Applier limits.
const (
	// applierClaim bounds the accepted entries read per poll.
	applierClaim = 256
	// applierIdle is the poll interval when nothing is waiting; a local
	// Accept wakes the applier at once.
	applierIdle = 100 * time.Millisecond
	// applierParallel bounds requests submitted to the pipeline at once, so
	// a large backlog cannot push the pipeline into overload by itself.
	applierParallel = 64
)

// Run applies accepted entries until ctx ends. Several processes may run
// appliers on one database: the journal row lock in the batch makes a
// second application return the recorded outcome instead of applying again.
func (j *Journal) Run(ctx context.Context) error {
	for {
		n, err := j.applyPending(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			j.log.Warn("journal applier", "err", err)
		}
		if n == applierClaim {
			continue
		}
		wait := applierIdle + time.Duration(rand.IntN(20))*time.Millisecond
		select {
		case <-ctx.Done():
			return nil
		case <-j.wake:
		case <-time.After(wait):
		}
	}
}

func (j *Journal) applyPending(ctx context.Context) (int, error) {
	// The age is computed on the database's clock, like accepted_at.
	rows, err := j.pool.Query(ctx, `SELECT tenant_id, id::text, request,
		extract(epoch FROM now() - accepted_at)::float8 FROM journal
		WHERE state = 'accepted' ORDER BY accepted_at LIMIT $1`, applierClaim)
	if err != nil {
		return 0, err
	}
	type pendingReq struct {
		tenant, id string
		body       []byte
		age        float64
	}
	reqs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pendingReq, error) {
		var p pendingReq
		return p, row.Scan(&p.tenant, &p.id, &p.body, &p.age)
	})
	if err != nil {
		return 0, err
	}
	oldest := 0.0
	if len(reqs) > 0 {
		oldest = max(reqs[0].age, 0)
	}
	j.pipe.metrics.journalOldest.Set(oldest)
	sem := make(chan struct{}, applierParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs error
	addErr := func(err error) {
		mu.Lock()
		errs = errors.Join(errs, err)
		mu.Unlock()
	}
	// Every goroutine started here is waited for on every return path: the
	// applier never returns with submissions still running.
	for _, p := range reqs {
		var in BatchInput
		if err := json.Unmarshal(p.body, &in); err != nil {
			// A row that cannot be decoded can never be applied: reject it
			// with its reason, or it would be claimed first forever and
			// stall every entry behind it.
			addErr(j.reject(ctx, p.tenant, p.id, -1, reject(CodeMalformed, "journaled request cannot be decoded: %v", err)))
			continue
		}
		// Validated again: the row is input like any other (written by an
		// older version, or by hand). A row that fails is final, rejected
		// with its reason for the same reason as one that cannot be decoded.
		if bad := validateBatch(in.Transactions, fromClient); bad != nil {
			addErr(j.reject(ctx, p.tenant, p.id, len(in.Transactions), bad))
			continue
		}
		b := prepare(in.Transactions)
		b.journalID = p.id
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return len(reqs), errors.Join(errs, ctx.Err())
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := j.pipe.Submit(ctx, p.tenant, b)
			var le *Error
			if errors.As(err, &le) {
				// Refused as a whole (e.g. isolated from its batch as
				// unstorable): final, so record it rather than redrive.
				err = j.reject(ctx, p.tenant, p.id, b.Len(), le)
			}
			if err != nil {
				addErr(err)
			}
		}()
	}
	wg.Wait()
	return len(reqs), errs
}

// reject finishes an accepted entry as rejected with le as the outcome of
// each of its n transactions (one when n < 1), unless another applier
// finished it first.
func (j *Journal) reject(ctx context.Context, tenant, id string, n int, le *Error) error {
	n = max(n, 1)
	res := make([]Result, n)
	for i := range res {
		e := *le
		e.Index = i
		res[i] = Result{Err: &e}
	}
	out, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("journal %s: marshal outcome: %w", id, err)
	}
	if _, err := j.pool.Exec(ctx, `UPDATE journal SET state = 'rejected', outcome = $3, finished_at = now(), attempts = attempts + 1
		WHERE tenant_id = $1 AND id = $2 AND state = 'accepted'`, tenant, id, string(out)); err != nil {
		return fmt.Errorf("journal %s: record rejection: %w", id, err)
	}
	j.log.Warn("journal entry rejected", "tenant", tenant, "id", id, "code", le.Code, "detail", le.Detail)
	return nil
}
