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
)

// maxBatchAttempts bounds retries of one batch after a serialization
// failure, deadlock report or unique-key race with another process (see
// "Retry set" in doc.go).
const maxBatchAttempts = 8

// applyBatch applies reqs in one PostgreSQL transaction, retrying the whole
// batch on transient conflicts. Results are written into the requests. Its
// lock order and round trips are described in doc.go; a change to either
// changes that note.
func applyBatch(ctx context.Context, pool *pgxpool.Pool, reqs []*request, naive bool, timing *batchTiming) error {
	var err error
	for attempt := 1; attempt <= maxBatchAttempts; attempt++ {
		if timing != nil {
			timing.attempts++
		}
		err = applyAttempt(ctx, pool, reqs, naive, timing)
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

func applyAttempt(ctx context.Context, pool *pgxpool.Pool, reqs []*request, naive bool, timing *batchTiming) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release() // a connection left inside a transaction is destroyed, not reused
	send := func(b *pgx.Batch) pgx.BatchResults { return conn.SendBatch(ctx, b) }
	if naive {
		send = func(b *pgx.Batch) pgx.BatchResults {
			return &oneByOne{ctx: ctx, conn: conn.Conn(), queued: b.QueuedQueries}
		}
	}
	err = applyOnce(send, reqs, timing)
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		_, _ = conn.Exec(ctx, "ROLLBACK")
	}
	return err
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

// dataError reports whether err is PostgreSQL refusing the data of the
// batch rather than the batch as such: SQLSTATE classes 22 (data
// exception: invalid text, numeric overflow), 23 (integrity violations,
// but not 23505, which here is a race with another process and retried)
// and 54 (program limits: a value or row too large).
func dataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "54":
		return true
	case "23":
		return pgErr.Code != "23505"
	}
	return false
}

// pgCode names err's SQLSTATE for error details, or "" when it has none.
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return "SQLSTATE " + pgErr.Code
	}
	return ""
}

func applyOnce(send func(*pgx.Batch) pgx.BatchResults, reqs []*request, timing *batchTiming) error {
	b := newBatchState(reqs)
	t0 := timing.now()
	if err := b.lockAndLoad(send, reqs); err != nil {
		return err
	}
	t1 := timing.now()
	b.locked = lockedSnapshot(b.accounts) // nil unless built with bulwark_invariants
	for _, r := range reqs {
		if !r.journalDone {
			b.applyRequest(r)
		}
	}
	checkBatchInvariants(b)
	// Last round trip: every write, then COMMIT.
	batch := &pgx.Batch{}
	if err := b.queueWrites(batch, reqs); err != nil {
		return err
	}
	batch.Queue("COMMIT")
	t2 := timing.now()
	if err := send(batch).Close(); err != nil {
		return fmt.Errorf("write and commit: %w", err)
	}
	timing.add(t0, t1, t2)
	return nil
}

// batchTiming is where a traced batch spends its time, summed over the
// database transactions of its attempts and isolation halves that
// committed. A nil *batchTiming (tracing off) reads no clock.
type batchTiming struct {
	lock     time.Duration // BEGIN, journal and account row locks, loads
	apply    time.Duration // rules in memory, building the writes
	commit   time.Duration // writes and COMMIT
	attempts int           // database transactions tried (retries, halves)
}

func (t *batchTiming) now() time.Time {
	if t == nil {
		return time.Time{}
	}
	return time.Now()
}

func (t *batchTiming) add(t0, t1, t2 time.Time) {
	if t == nil {
		return
	}
	t3 := time.Now()
	t.lock += t1.Sub(t0)
	t.apply += t2.Sub(t1)
	t.commit += t3.Sub(t2)
}

// newBatchState sizes the attempt's maps and slices up front: the
// in-memory apply runs while the batch holds its row locks, so it should
// not spend that time growing them.
func newBatchState(reqs []*request) *batchState {
	n := 0
	for _, r := range reqs {
		n += len(r.items)
		r.journalDone = false
	}
	return &batchState{
		accounts: make(map[acctKey]*acct, 2*n),
		pending:  make(map[acctKey]*pendingTx),
		existing: make(map[acctKey]*existingTx),
		inBatch:  make(map[acctKey]*item, n),
		entries:  make([]entryRow, 0, 2*n),
		txs:      make([]txRow, 0, n),
		undo:     make([]undoRec, 0, 2*n),
	}
}

// lockAndLoad runs the reading round trips (see doc.go): BEGIN, journal
// row locks, idempotency keys and, when no item refers to a pending
// transaction, the account locks, all in one; otherwise the pending rows
// come first and the account locks and pending states in a second trip.
func (b *batchState) lockAndLoad(send func(*pgx.Batch) pgx.BatchResults, reqs []*request) error {
	needPending := hasPendingRefs(reqs)
	batch := &pgx.Batch{}
	batch.Queue("BEGIN")
	// Nested loops only: see "Why nested loops" in doc.go.
	batch.Queue("SET LOCAL enable_hashjoin = off")
	batch.Queue("SET LOCAL enable_mergejoin = off")
	jq := queueJournalLock(batch, reqs)
	b.queueLoad(batch, reqs)
	if !needPending {
		b.queueLock(batch, reqs)
	}
	br := send(batch)
	err := readAll(br, func() error {
		for range 3 {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("begin: %w", err)
			}
		}
		if jq {
			if err := readJournalLock(br, reqs); err != nil {
				return err
			}
		}
		if err := b.readLoad(br, needPending); err != nil {
			return err
		}
		if !needPending {
			return b.readLock(br)
		}
		return nil
	})
	if err != nil || !needPending {
		return err
	}
	batch = &pgx.Batch{}
	b.queueLock(batch, reqs)
	b.queueReloadPending(batch)
	br = send(batch)
	return readAll(br, func() error {
		if err := b.readLock(br); err != nil {
			return err
		}
		return b.readReloadPending(br)
	})
}

// readAll runs read, then closes br, returning the first error.
func readAll(br pgx.BatchResults, read func() error) error {
	err := read()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

func hasPendingRefs(reqs []*request) bool {
	for _, r := range reqs {
		for i := range r.items {
			if r.items[i].in.PendingID != "" {
				return true
			}
		}
	}
	return false
}

// queueJournalLock locks the journal rows of journal-driven requests.
func queueJournalLock(batch *pgx.Batch, reqs []*request) bool {
	var tenants, ids []string
	for _, r := range reqs {
		if r.journalID != "" {
			tenants, ids = append(tenants, r.tenant), append(ids, r.journalID)
		}
	}
	if len(ids) == 0 {
		return false
	}
	batch.Queue(`SELECT j.tenant_id, j.id::text, j.state, j.outcome FROM journal j
		JOIN unnest($1::text[], $2::uuid[]) AS k(t, id) ON j.tenant_id = k.t AND j.id = k.id
		ORDER BY j.tenant_id COLLATE "C", j.id FOR UPDATE OF j`, tenants, ids)
	return true
}

// readJournalLock marks the requests another attempt already finished and
// loads their recorded outcome.
func readJournalLock(br pgx.BatchResults, reqs []*request) error {
	byKey := map[acctKey]*request{}
	for _, r := range reqs {
		if r.journalID != "" {
			byKey[acctKey{r.tenant, r.journalID}] = r
		}
	}
	rows, err := br.Query()
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
		if JournalState(state) == JournalAccepted {
			continue
		}
		r.journalDone = true
		var res []Result
		if err := json.Unmarshal(outcome, &res); err != nil || len(res) != len(r.items) {
			return fmt.Errorf("journal %s: outcome does not match its request: %w", id, err)
		}
		for i := range r.items {
			r.items[i].res = res[i]
		}
	}
	return rows.Err()
}

// queueLoad reads the idempotency keys already used and the pending
// transactions that post/void items refer to.
func (b *batchState) queueLoad(batch *pgx.Batch, reqs []*request) {
	var kt, kk, pt, pid []string
	for _, r := range reqs {
		for i := range r.items {
			in := r.items[i].in
			kt, kk = append(kt, r.tenant), append(kk, in.IdempotencyKey)
			if in.PendingID != "" {
				pt, pid = append(pt, r.tenant), append(pid, in.PendingID)
			}
		}
	}
	batch.Queue(`SELECT t.tenant_id, t.idempotency_key, t.request_digest, `+txColumns+` FROM transactions t
		JOIN unnest($1::text[], $2::text[]) AS k(t, key) ON t.tenant_id = k.t AND t.idempotency_key = k.key`, kt, kk)
	if len(pid) > 0 {
		batch.Queue(`SELECT t.tenant_id, t.id::text, t.postings, t.state, t.expires_at FROM transactions t
			JOIN unnest($1::text[], $2::uuid[]) AS k(t, id) ON t.tenant_id = k.t AND t.id = k.id
			WHERE t.kind = 'pending'`, pt, pid)
	}
}

func (b *batchState) readLoad(br pgx.BatchResults, withPending bool) error {
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
			rows.Close()
			return err
		}
		finishScan(&ex.tx)
		copy(ex.digest[:], digest)
		b.existing[acctKey{t, key}] = ex
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if withPending {
		return b.readPending(br)
	}
	return nil
}

func (b *batchState) readPending(br pgx.BatchResults) error {
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
		p := &pendingTx{state: State(state), expiresAt: exp}
		if err := json.Unmarshal(postings, &p.postings); err != nil {
			return fmt.Errorf("pending %s: postings: %w", id, err)
		}
		b.pending[acctKey{t, id}] = p
	}
	return rows.Err()
}

// queueLock locks every account the batch may touch, sorted, and reads the
// clock after the locks so entry times follow chain order per account.
func (b *batchState) queueLock(batch *pgx.Batch, reqs []*request) {
	keys := map[acctKey]struct{}{}
	for _, r := range reqs {
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
	// ORDER BY sits below the row locking, so rows are locked in this order;
	// COLLATE "C" makes the database's order the same as Go's byte order.
	batch.Queue(`SELECT a.tenant_id, a.id, a.asset, a.rule, a.seq, a.debits_posted, a.credits_posted,
			a.debits_pending, a.credits_pending
		FROM accounts a JOIN unnest($1::text[], $2::text[]) AS k(t, id) ON a.tenant_id = k.t AND a.id = k.id
		ORDER BY a.tenant_id COLLATE "C", a.id COLLATE "C" FOR UPDATE OF a`, ts, ids)
	batch.Queue(`SELECT clock_timestamp()`)
}

func (b *batchState) readLock(br pgx.BatchResults) error {
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("lock accounts: %w", err)
	}
	for rows.Next() {
		var k acctKey
		a := &acct{}
		if err := rows.Scan(&k.tenant, &k.id, &a.asset, &a.rule, &a.seq, &a.dp, &a.cp, &a.dpend, &a.cpend); err != nil {
			rows.Close()
			return err
		}
		b.accounts[k] = a
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if err := br.QueryRow().Scan(&b.now); err != nil {
		return fmt.Errorf("read clock: %w", err)
	}
	return nil
}

// queueReloadPending re-reads pending states after the account locks: a
// concurrent batch may have posted or voided one since it was first read.
func (b *batchState) queueReloadPending(batch *pgx.Batch) {
	var ts, ids []string
	for k := range b.pending {
		ts, ids = append(ts, k.tenant), append(ids, k.id)
	}
	batch.Queue(`SELECT t.tenant_id, t.id::text, t.state FROM transactions t
		JOIN unnest($1::text[], $2::uuid[]) AS k(t, id) ON t.tenant_id = k.t AND t.id = k.id`, ts, ids)
}

func (b *batchState) readReloadPending(br pgx.BatchResults) error {
	rows, err := br.Query()
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
		b.pending[k].state = State(state)
	}
	return rows.Err()
}
