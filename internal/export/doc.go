// Package export turns ledger rows into files: asynchronous export jobs
// stored in PostgreSQL (export_jobs), run by workers that claim them with
// leases, read them in checkpointed chunks on dedicated bounded pools, and
// write CSV or JSONL files (optionally gzip) with a manifest and signed,
// expiring download links. docs/exports.md is the user's guide.
//
// # Consistency
//
// A job's cut-off is the database clock when it was created. Every chunk
// reads rows with created_at at or before it (accounts: balances after
// each account's last entry at or before it). Ledger writers take
// created_at from clock_timestamp() inside their transaction after they
// lock rows, so before the first chunk the worker waits until no
// transaction holding an id and started at or before the cut-off is open
// (settle); from then on the set of rows at or before the cut-off is
// fixed, whichever worker reads which chunk, however often. Entries and
// transactions are immutable; archiving a partition while an export of
// it runs is the one thing that changes that set (an operator action,
// documented).
//
// # Resumption and byte identity
//
// Rows are read in key order by keyset (entries: account, seq;
// transactions and accounts: id), chunk_rows at a time, and rendered by a
// pure function of the values (timestamps as UTC text in SQL). After each
// chunk the worker syncs the file and then records the checkpoint (chunk
// count, last key, byte offset, SHA-256 state) in a guarded update that
// only the lease holder can make. A worker resuming a job truncates the
// file to the checkpoint's offset and reads on from its key: the same
// chunks, the same bytes. With gzip each chunk is its own gzip member.
// Even two workers briefly writing one file (a lease taken over from a
// stalled worker) write the same bytes at the same offsets, and only the
// holder's checkpoint is recorded.
//
// # Isolation
//
// At creation the planner estimates the rows; above exports.huge_threshold_rows
// a job goes to the huge queue. Each queue has its own workers and its own
// database pool. Huge jobs are capped globally and per tenant at claim time
// (a row lock per queue makes the caps exact across processes) and take one
// token of tasks.export_huge.rate_per_partition (partition 0: per tenant)
// per chunk; 0 pauses them at the next chunk, keeping their lease.
//
// # Concurrency
//
// Runner.Run owns every goroutine: NormalWorkers + HugeWorkers workers,
// one heartbeat per running job, and the sweeper; it returns after all
// have stopped. Memory per worker is one row plus a 256 KiB write buffer
// (and a gzip writer), whatever the size of the export.
package export
