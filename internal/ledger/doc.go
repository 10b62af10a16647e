// Package ledger is Bulwark's double-entry ledger on PostgreSQL: accounts
// with last-record balances, transactions of postings, and per account a
// contiguous chain of entries. It owns input validation (decode.go), the
// commit pipeline (pipeline.go, apply.go, batch.go, write.go), the async
// journal (journal.go), pending expiry (expire.go), reads (store.go),
// partition upkeep (partition.go) and archiving (archive.go). The
// user-facing description is docs/ledger.md; this note is the design of the
// commit pipeline, for whoever changes it.
//
// # Invariants
//
// Every committed transaction balances per asset and effect (a posting
// debits its source and credits its destination with one amount); each
// account's entries are numbered 1, 2, 3, … without gaps, each carrying the
// balances after it, and the account row holds the balances after its last
// entry. `bulwark ledger verify` checks them on the database; built with
// the tag bulwark_invariants (make test sets it), every batch is checked
// in memory before it is written and a violation panics
// (invariants_on.go).
//
// # One entrance: Batch
//
// Pipeline.Submit takes a Batch, and every constructor of a Batch
// validates: NewBatch and the HTTP decoders for clients; the journal
// applier validates each row it reads again (a row that fails is rejected
// with its reason, like one that cannot be decoded); the expirer builds
// expire_pending items, the one kind no client may send. A Batch carries
// each transaction's idempotency digest (SHA-256 of its canonical
// encoding) and its postings' JSON, computed by the goroutine that built
// it, so the committer does not compute them while it holds row locks.
//
// # Queue bound
//
// Submit counts the transactions submitted and not yet answered; past
// PipelineConfig.MaxQueuedTransactions (default 65,536 = 8 full batches;
// at ~1 KiB of request each, ~64 MiB) it returns ErrOverloaded at once
// (HTTP 503 with Retry-After) and counts it. The request channel has
// queueSlots (4,096) slots; when they are full Submit returns
// ErrOverloaded too, never blocks. Large requests reach the transaction
// bound first (8 requests of 8,190); single-transaction requests reach the
// slot bound first (4,096 transfers, about 0.7 s of work at the measured
// ~5,600 transfers/s). Memory is bounded either way.
//
// # Batch window and size
//
// A committer takes one request, then gathers more until the batch holds
// MaxBatchTransactions (8,190) or BatchWindow (500 µs) has passed. A
// request that does not fit is carried to the next batch whole: a request
// never spans two database transactions.
//
// 8,190 is the request body limit divided by the size of a transaction:
// MaxBodyBytes = 8 MiB = 8,192 × 1 KiB (MaxPostings and MaxMetadataBytes
// keep a typical transaction near 1 KiB), less 2 for the envelope. One
// batch of 8,190 transfers writes 16,380 entries in one INSERT from arrays
// and holds its locks well under a second.
//
// The window is short beside a commit: a batch costs ~3.5 ms (two round
// trips, one WAL flush), so waiting 500 µs adds at most ~15% to a lone
// request's latency. Under load it hardly matters, because with two
// committers one gathers while the other commits, and what arrived during
// that commit is already queued (at 32 closed-loop clients: batches of ~13
// single transfers every ~3.5 ms). A negative window batches only what is
// already queued.
//
// Committers (default 2): one commits while the next locks and computes.
// More only add lock waits: every batch touching a hot account queues on
// its row lock.
//
// # Lock order
//
// Every batch, in every process, takes its locks in one global order, so
// batches never deadlock on one another:
//
//  1. journal rows of journal-driven requests, one statement sorted by
//     (tenant COLLATE "C", id);
//  2. every account the batch may touch, one statement
//     `ORDER BY tenant_id COLLATE "C", id COLLATE "C" FOR UPDATE`: the sort
//     sits below the lock, so rows are locked in that order, and COLLATE "C"
//     makes the database's order Go's byte order.
//
// Pending transactions are never locked: every change of a pending
// transaction holds the locks of all its accounts, which serialises those
// changes; their state is re-read after the account locks. The clock
// (clock_timestamp()) is read after the locks, so entry times follow chain
// order per account and no batch writes into a month that has ended
// before it locked (see archive.go).
//
// # Round trips
//
// BEGIN and COMMIT travel inside pipelined statement batches (pgx.Batch),
// so a database transaction costs two round trips:
//
//  1. BEGIN; SET LOCAL (below); lock journal rows; read the idempotency
//     keys already used; lock accounts; read the clock;
//  2. INSERT … SELECT FROM unnest(…) of transactions and entries (amounts
//     as bigint arrays when all of the batch fit in 63 bits, decimal text
//     otherwise), one UPDATE … FROM unnest(…) of every touched account,
//     pending state changes, journal outcomes; COMMIT.
//
// A batch that posts, voids or expires pending transactions takes three:
// their accounts are known only once the pending rows are read, and all
// account locks must be taken by the one sorted statement. Between the
// reads and the writes the batch is applied in memory (batch.go), in
// arrival order; a transaction or a whole group either applies fully or is
// undone from an undo log and rejected alone, and the batch goes on.
//
// Naive mode (the benchmark baseline) runs the same statements one round
// trip each, one database transaction per transfer: ~10 round trips where
// the pipeline spends 2 per batch.
//
// # Retry set
//
// applyBatch retries the whole batch, at most maxBatchAttempts (8) times
// with a linear pause (1 ms, 2 ms, …: 28 ms in all), on:
//
//   - 40001 serialization_failure and 40P01 deadlock_detected: not caused
//     by batches (see Lock order), but by whatever else takes locks in the
//     database, and safe to retry since nothing committed;
//   - 23505 unique_violation: another process committed the same
//     idempotency key first; the retry reads it and replays it.
//
// Everything else fails the batch. The whole commit, retries included, is
// bounded by commitTimeout (30 s), under a context of its own: a client
// that leaves does not abort the batch it shares with others.
//
// Data errors are isolated (Pipeline.applyIsolating): when PostgreSQL
// refuses a value of the batch (SQLSTATE classes 22 and 54, and 23 but for
// 23505), the batch is split in halves and each applied alone,
// recursively, so the request at fault fails alone with unstorable_value
// and its neighbours, perhaps other tenants', commit. Validation refuses
// everything known to be unstorable before this; it is defence in depth,
// costing a bad request's batch about 2·log2(requests) extra transactions.
//
// # Why nested loops
//
// Each batch transaction starts with SET LOCAL enable_hashjoin = off and
// enable_mergejoin = off. Every join of a batch is a few thousand keys
// (unnest of arrays) against a large table, which nested loops over the
// unique indexes do best; on a fresh table, missing statistics led the
// planner to hash joins that scan the whole table per batch (seen: 10 ms
// per 1,000 keys, growing with the table). For the same reason the server
// sets plan_cache_mode = force_custom_plan: a generic plan made on an empty
// table kept scanning (tens of µs of planning per statement instead).
//
// # Tried and rejected
//
//   - One round trip per statement (the first version, and naive mode
//     today): the round trips, not PostgreSQL's work, bound throughput.
//   - Hash and merge joins, generic plans: see above.
//   - An index of entries by transaction: every batch paid for it on each
//     entry inserted, and no hot path reads it.
//   - Amounts always as numeric text: parsing on the server cost more than
//     the binary bigint arrays that nearly every batch fits.
//   - Encoding postings JSON in the committer: it held row locks meanwhile;
//     the Batch carries it now. For the same reason the committer's maps
//     and slices are sized up front, and serve and bench run with GOGC=400.
//   - Locking pending transactions' rows: unnecessary (see Lock order) and
//     one more lock class to order.
//   - More committers: more lock waits on hot accounts, not more commits.
package ledger
