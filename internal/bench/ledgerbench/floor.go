package ledgerbench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
)

// The floor (mode floor) asks what PostgreSQL alone allows on this machine,
// so that a missed throughput target can be told apart from a slow server.
// No Bulwark server runs: committers write transfers straight into three
// tables shaped like the ledger's but leaner (floorSchema), each commit one
// pipelined round trip (BEGIN; insert the transactions; insert the entries;
// lock and update the accounts; COMMIT), the accounts last so that a
// commit holds the hot row only for its last statements and two
// committers overlap everything else. Sequence numbers come from memory,
// as an engine that owned its accounts would assign them; no idempotency
// lookup, no rules, no HTTP. Every real design pays at least this.
//
// The in-flight bound is the load's: request single keeps Clients
// transfers in flight (Clients callers waiting for their own transfer, as
// mode client does), batch100 keeps Clients × 100. Single is measured split
// into 1, 2 and 4 concurrent commits of Clients/k transfers and reports the
// best split; batch100 uses the pipeline's committers.
const floorSchema = `
CREATE TABLE floor_accounts (
	id      text PRIMARY KEY,
	seq     bigint NOT NULL DEFAULT 0,
	balance bigint NOT NULL DEFAULT 0);
CREATE TABLE floor_transactions (
	id              uuid PRIMARY KEY,
	idempotency_key text NOT NULL UNIQUE,
	postings        jsonb NOT NULL,
	created_at      timestamptz NOT NULL);
CREATE TABLE floor_entries (
	account_id     text NOT NULL,
	seq            bigint NOT NULL,
	transaction_id uuid NOT NULL,
	amount         bigint NOT NULL,
	PRIMARY KEY (account_id, seq));`

const floorInsertTransactions = `INSERT INTO floor_transactions (id, idempotency_key, postings, created_at)
	SELECT id, k, p, $4 FROM unnest($1::uuid[], $2::text[], $3::jsonb[]) AS u(id, k, p)`

const floorInsertEntries = `INSERT INTO floor_entries (account_id, seq, transaction_id, amount)
	SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::bigint[])`

const floorLockAccounts = `SELECT id FROM floor_accounts WHERE id = ANY($1::text[]) ORDER BY id COLLATE "C" FOR UPDATE`

const floorUpdateAccounts = `UPDATE floor_accounts a SET seq = a.seq + u.n, balance = a.balance + u.d
	FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(id, n, d) WHERE a.id = u.id`

// floorSplits are the numbers of concurrent commits tried for request
// single (at most the in-flight transfers).
var floorSplits = []int{1, 2, 4}

// floorAttempts bounds the retries of a commit (deadlocks between
// committers on the uniform workload).
const floorAttempts = 8

// floorRun is one split: committers writing batches of size transfers.
type floorRun struct {
	pool       *pgxpool.Pool
	work       *workload
	committers int
	size       int
	seq        *atomic.Int64 // entry sequence numbers, shared by every run of the database
	written    *atomic.Int64 // transfers committed, in or out of the window, checked by floorCheck
}

// runFloor measures mode floor for request on a fresh database.
func runFloor(ctx context.Context, cfg *Config, adminURL string, work *workload, request string) (res Result, err error) {
	name := fmt.Sprintf("bench_%s_%s_%s_%d", cfg.Workload, ModeFloor, request, time.Now().UnixNano())
	pool, err := floorDatabase(ctx, adminURL, name, work)
	if err != nil {
		return res, err
	}
	defer func() {
		pool.Close()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if dropErr := execSQL(dctx, adminURL, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); dropErr != nil {
			err = errors.Join(err, fmt.Errorf("drop database %s: %w", name, dropErr))
		}
	}()
	inflight, splits := cfg.Clients, floorSplits
	if request == RequestBatch100 {
		inflight, splits = cfg.Clients*batchSize, []int{max(cfg.Pipeline.Committers, 2)}
	}
	var seq, written atomic.Int64
	var best Result
	for i, k := range splits {
		if k > inflight || (i > 0 && k == splits[i-1]) {
			continue
		}
		fr := floorRun{pool: pool, work: work, committers: k, size: inflight / k, seq: &seq, written: &written}
		r, err := fr.measure(ctx, cfg, cfg.Warmup/time.Duration(len(splits)))
		if err != nil {
			return res, err
		}
		r.Workload, r.Mode, r.Request, r.Clients = cfg.Workload, ModeFloor, request, cfg.Clients
		if best.Mode == "" || r.TransfersPerSec > best.TransfersPerSec {
			best = r
		}
	}
	violations, err := floorCheck(ctx, pool, written.Load())
	best.Violations = append(best.Violations, violations...)
	best.Errors += int64(len(violations))
	return best, err
}

// floorCheck verifies that the floor wrote what it counted: one
// transaction row and two entries per committed transfer, account
// sequences that add up to the entries, and balances that sum to zero.
// A floor that lost writes would flatter PostgreSQL.
func floorCheck(ctx context.Context, pool *pgxpool.Pool, committed int64) ([]string, error) {
	var txs, entries, seqs, balance int64
	err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM floor_transactions), (SELECT count(*) FROM floor_entries),
		(SELECT coalesce(sum(seq), 0) FROM floor_accounts), (SELECT coalesce(sum(balance), 0) FROM floor_accounts)`).
		Scan(&txs, &entries, &seqs, &balance)
	if err != nil {
		return nil, fmt.Errorf("floor check: %w", err)
	}
	var out []string
	if txs != committed || entries != 2*committed || seqs != entries || balance != 0 {
		out = append(out, fmt.Sprintf("floor: %d transfers committed but %d transactions, %d entries, account sequences summing to %d, balances to %d",
			committed, txs, entries, seqs, balance))
	}
	return out, nil
}

// floorDatabase creates the database name with the floor's tables and the
// workload's accounts, and returns a pool on it.
func floorDatabase(ctx context.Context, adminURL, name string, work *workload) (*pgxpool.Pool, error) {
	dbURL, err := withDB(adminURL, name)
	if err != nil {
		return nil, err
	}
	if err := execSQL(ctx, adminURL, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, floorSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("floor schema: %w", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO floor_accounts (id) SELECT unnest($1::text[])`, work.accounts); err != nil {
		pool.Close()
		return nil, fmt.Errorf("floor accounts: %w", err)
	}
	return pool, nil
}

// floorStats tallies the commits of one split.
type floorStats struct {
	start, end time.Time // the measured window

	mu        sync.Mutex
	hist      histogram     // commit times in the window
	busy      time.Duration // their sum
	commits   int64         // in the window
	transfers int64         // in the window
	failed    int64         // transfers of failed commits, warm-up included
	firstErr  error
	cpu0      time.Duration // process CPU at the window's first commit; -1 before
}

func (st *floorStats) add(fr *floorRun, began, done time.Time, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cpu0 < 0 && !began.Before(st.start) {
		st.cpu0 = processCPU()
	}
	if err != nil {
		st.failed += int64(fr.size)
		st.firstErr = cmp.Or(st.firstErr, err)
		return
	}
	fr.written.Add(int64(fr.size))
	if !began.Before(st.start) && !done.After(st.end) {
		st.hist.record(done.Sub(began))
		st.busy += done.Sub(began)
		st.commits, st.transfers = st.commits+1, st.transfers+int64(fr.size)
	}
}

// measure runs the committers for warmup, then for cfg.Duration, and
// returns the window's rate, commit times and failures.
func (fr *floorRun) measure(ctx context.Context, cfg *Config, warmup time.Duration) (Result, error) {
	st := &floorStats{start: time.Now().Add(warmup), cpu0: -1}
	st.end = st.start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for c := range fr.committers {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(cfg.Seed, uint64(c)))
			for ctx.Err() == nil && time.Now().Before(st.end) {
				b := fr.batch(rng) // built before the clock starts: a caller's work, not the database's
				began := time.Now()
				err := fr.send(ctx, b)
				st.add(fr, began, time.Now(), err)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	secs := cfg.Duration.Seconds()
	r := Result{
		TransfersPerSec: round(float64(st.transfers)/secs, 1),
		P50Ms:           ms(st.hist.quantile(0.50)),
		P99Ms:           ms(st.hist.quantile(0.99)),
		Errors:          st.failed,
		Transfers:       st.transfers,
		Requests:        st.commits,
		DurationS:       secs,
		Violations:      []string{},
		Committers:      fr.committers,
	}
	if st.cpu0 >= 0 {
		r.ProcessCPUCores = round((processCPU()-st.cpu0).Seconds()/secs, 2)
	}
	if st.firstErr != nil {
		r.FirstError = st.firstErr.Error()
	}
	if st.commits > 0 {
		r.BatchTransactionsAvg = float64(fr.size)
		r.BatchMsAvg = round(float64(st.busy)/float64(time.Millisecond)/float64(st.commits), 3)
	}
	return r, nil
}

// send commits b in one round trip, retrying deadlocks between
// committers.
func (fr *floorRun) send(ctx context.Context, b *pgx.Batch) error {
	var err error
	for attempt := 1; attempt <= floorAttempts; attempt++ {
		if err = fr.pool.SendBatch(ctx, b).Close(); err == nil || !floorRetryable(err) {
			break
		}
		time.Sleep(time.Duration(attempt) * time.Millisecond)
	}
	return err
}

func floorRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// batch builds the statements of one commit of fr.size transfers of one
// unit each, drawn from the workload.
func (fr *floorRun) batch(rng *mrand.Rand) *pgx.Batch {
	n := fr.size
	ids, keys, postings := make([]string, n), make([]string, n), make([]string, n)
	accts, seqs, txs, amounts := make([]string, 0, 2*n), make([]int64, 0, 2*n), make([]string, 0, 2*n), make([]int64, 0, 2*n)
	delta := map[string][2]int64{} // account: entries, balance change
	first := fr.seq.Add(int64(2*n)) - int64(2*n)
	for i := range n {
		src, dst := fr.work.pick(rng)
		ids[i], keys[i] = ledger.NewID(), randomKey()
		postings[i] = fmt.Sprintf(`[{"source":%q,"destination":%q,"amount":"1","asset":%q}]`, src, dst, asset)
		for j, a := range [2]string{src, dst} {
			amount := int64(1 - 2*(1-j)) // the source -1, the destination +1
			accts, seqs, txs, amounts = append(accts, a), append(seqs, first+int64(2*i+j)), append(txs, ids[i]), append(amounts, amount)
			d := delta[a]
			delta[a] = [2]int64{d[0] + 1, d[1] + amount}
		}
	}
	touched := make([]string, 0, len(delta))
	for a := range delta {
		touched = append(touched, a)
	}
	slices.Sort(touched)
	ns, ds := make([]int64, len(touched)), make([]int64, len(touched))
	for i, a := range touched {
		ns[i], ds[i] = delta[a][0], delta[a][1]
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(floorInsertTransactions, ids, keys, postings, time.Now())
	b.Queue(floorInsertEntries, accts, seqs, txs, amounts)
	b.Queue(floorLockAccounts, touched)
	b.Queue(floorUpdateAccounts, touched, ns, ds)
	b.Queue("COMMIT")
	return b
}
