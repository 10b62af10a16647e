package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

// maxBatchAttempts bounds retries of one batch after a serialization
// failure, deadlock report or unique-key race with another process.
const maxBatchAttempts = 8

// applyBatch applies reqs in one PostgreSQL transaction, retrying the whole
// batch on transient conflicts. Results are written into the requests.
//
// Lock order, the same in every process so that batches never deadlock:
// journal rows (sorted), then account rows (sorted by tenant, id). Pending
// transactions are not locked: every change of a pending transaction holds
// the locks of all its accounts, which serialises them.
func applyBatch(ctx context.Context, pool *pgxpool.Pool, reqs []*request) error {
	var err error
	for attempt := 1; attempt <= maxBatchAttempts; attempt++ {
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return applyOnce(ctx, tx, reqs) })
		if err == nil || !retryable(err) {
			break
		}
		time.Sleep(time.Duration(attempt) * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("apply batch of %d requests: %w", len(reqs), err)
	}
	return nil
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", "40P01", "23505": // serialization, deadlock, unique race
			return true
		}
	}
	return false
}

func applyOnce(ctx context.Context, tx pgx.Tx, reqs []*request) error {
	b := &batchState{
		accounts: make(map[acctKey]*acct),
		pending:  make(map[acctKey]*pendingTx),
		existing: make(map[acctKey]*existingTx),
		inBatch:  make(map[acctKey]*item),
	}
	if err := lockJournal(ctx, tx, reqs); err != nil {
		return err
	}
	if err := b.load(ctx, tx, reqs); err != nil {
		return err
	}
	if err := b.lockAccounts(ctx, tx, reqs); err != nil {
		return err
	}
	for _, r := range reqs {
		if !r.journalDone {
			b.applyRequest(r)
		}
	}
	return b.write(ctx, tx, reqs)
}

// lockJournal locks the journal rows of journal-driven requests and marks
// the ones another attempt already finished, loading their outcome.
func lockJournal(ctx context.Context, tx pgx.Tx, reqs []*request) error {
	var tenants, ids []string
	byKey := map[acctKey]*request{}
	for _, r := range reqs {
		r.journalDone = false
		if r.journalID != "" {
			tenants, ids = append(tenants, r.tenant), append(ids, r.journalID)
			byKey[acctKey{r.tenant, r.journalID}] = r
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT j.tenant_id, j.id::text, j.state, j.outcome FROM journal j
		JOIN unnest($1::text[], $2::uuid[]) AS k(t, id) ON j.tenant_id = k.t AND j.id = k.id
		ORDER BY j.tenant_id, j.id FOR UPDATE OF j`, tenants, ids)
	if err != nil {
		return fmt.Errorf("lock journal: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t, id, state string
		var outcome []byte
		if err := rows.Scan(&t, &id, &state, &outcome); err != nil {
			return err
		}
		r := byKey[acctKey{t, id}]
		if state != "accepted" {
			r.journalDone = true
			var res []Result
			if err := json.Unmarshal(outcome, &res); err != nil || len(res) != len(r.items) {
				return fmt.Errorf("journal %s: outcome does not match its request: %v", id, err)
			}
			for i := range r.items {
				r.items[i].res = res[i]
			}
		}
	}
	return rows.Err()
}

// load reads the idempotency keys already used and the pending transactions
// that post/void items refer to, in one round trip.
func (b *batchState) load(ctx context.Context, tx pgx.Tx, reqs []*request) error {
	var kt, kk, pt, pid []string
	for _, r := range reqs {
		if r.journalDone {
			continue
		}
		for i := range r.items {
			in := r.items[i].in
			kt, kk = append(kt, r.tenant), append(kk, in.IdempotencyKey)
			if in.PendingID != "" {
				pt, pid = append(pt, r.tenant), append(pid, in.PendingID)
			}
		}
	}
	batch := &pgx.Batch{}
	batch.Queue(`SELECT t.tenant_id, t.idempotency_key, t.request_digest, `+txColumns+` FROM transactions t
		JOIN unnest($1::text[], $2::text[]) AS k(t, key) ON t.tenant_id = k.t AND t.idempotency_key = k.key`, kt, kk)
	if len(pid) > 0 {
		batch.Queue(`SELECT t.tenant_id, t.id::text, t.postings, t.state, t.expires_at FROM transactions t
			JOIN unnest($1::text[], $2::uuid[]) AS k(t, id) ON t.tenant_id = k.t AND t.id = k.id
			WHERE t.kind = 'pending'`, pt, pid)
	}
	br := tx.SendBatch(ctx, batch)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("load idempotency keys: %w", err)
	}
	for rows.Next() {
		var t, key string
		var digest []byte
		ex := &existingTx{}
		dest := append([]any{&t, &key, &digest}, txScanDest(&ex.tx)...)
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		finishScan(&ex.tx)
		copy(ex.digest[:], digest)
		b.existing[acctKey{t, key}] = ex
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(pid) > 0 {
		if err := b.loadPending(br); err != nil {
			return err
		}
	}
	return br.Close()
}

func (b *batchState) loadPending(br pgx.BatchResults) error {
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("load pending transactions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t, id, state string
		var postings []byte
		var exp *time.Time
		if err := rows.Scan(&t, &id, &postings, &state, &exp); err != nil {
			return err
		}
		p := &pendingTx{state: state, expiresAt: exp}
		if err := json.Unmarshal(postings, &p.postings); err != nil {
			return fmt.Errorf("pending %s: postings: %w", id, err)
		}
		b.pending[acctKey{t, id}] = p
	}
	return rows.Err()
}

// lockAccounts locks every account the batch may touch, sorted, and reads
// the clock after the locks so entry times follow chain order per account.
// Pending rows were read before the locks; they are re-read after them,
// because a concurrent batch may have posted or voided one meanwhile.
func (b *batchState) lockAccounts(ctx context.Context, tx pgx.Tx, reqs []*request) error {
	keys := map[acctKey]struct{}{}
	for _, r := range reqs {
		if r.journalDone {
			continue
		}
		for i := range r.items {
			for _, p := range r.items[i].in.Postings {
				keys[acctKey{r.tenant, p.Source}] = struct{}{}
				keys[acctKey{r.tenant, p.Destination}] = struct{}{}
			}
			if p := b.pending[acctKey{r.tenant, r.items[i].in.PendingID}]; p != nil {
				for _, pp := range p.postings {
					keys[acctKey{r.tenant, pp.Source}] = struct{}{}
					keys[acctKey{r.tenant, pp.Destination}] = struct{}{}
				}
			}
		}
	}
	sorted := make([]acctKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].tenant != sorted[j].tenant {
			return sorted[i].tenant < sorted[j].tenant
		}
		return sorted[i].id < sorted[j].id
	})
	ts, ids := make([]string, len(sorted)), make([]string, len(sorted))
	for i, k := range sorted {
		ts[i], ids[i] = k.tenant, k.id
	}
	batch := &pgx.Batch{}
	// ORDER BY sits below the row locking, so rows are locked in this order.
	batch.Queue(`SELECT a.tenant_id, a.id, a.asset, a.rule, a.seq, a.debits_posted, a.credits_posted,
			a.debits_pending, a.credits_pending
		FROM accounts a JOIN unnest($1::text[], $2::text[]) AS k(t, id) ON a.tenant_id = k.t AND a.id = k.id
		ORDER BY a.tenant_id COLLATE "C", a.id COLLATE "C" FOR UPDATE OF a`, ts, ids)
	batch.Queue(`SELECT clock_timestamp()`)
	br := tx.SendBatch(ctx, batch)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("lock accounts: %w", err)
	}
	for rows.Next() {
		var k acctKey
		a := &acct{}
		if err := rows.Scan(&k.tenant, &k.id, &a.asset, &a.rule, &a.seq, &a.dp, &a.cp, &a.dpend, &a.cpend); err != nil {
			return err
		}
		b.accounts[k] = a
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := br.QueryRow().Scan(&b.now); err != nil {
		return fmt.Errorf("read clock: %w", err)
	}
	if err := br.Close(); err != nil {
		return err
	}
	return b.reloadPendingStates(ctx, tx)
}

func (b *batchState) reloadPendingStates(ctx context.Context, tx pgx.Tx) error {
	if len(b.pending) == 0 {
		return nil
	}
	var ts, ids []string
	for k := range b.pending {
		ts, ids = append(ts, k.tenant), append(ids, k.id)
	}
	rows, err := tx.Query(ctx, `SELECT t.tenant_id, t.id::text, t.state FROM transactions t
		JOIN unnest($1::text[], $2::uuid[]) AS k(t, id) ON t.tenant_id = k.t AND t.id = k.id`, ts, ids)
	if err != nil {
		return fmt.Errorf("reload pending states: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k acctKey
		var state string
		if err := rows.Scan(&k.tenant, &k.id, &state); err != nil {
			return err
		}
		b.pending[k].state = state
	}
	return rows.Err()
}

var _ = amount.Uint128{}
