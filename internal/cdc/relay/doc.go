// Package relay moves a PostgreSQL publication's changes into Kafka exactly
// once: a read_committed consumer sees every committed change once, in
// commit order per key, and nothing of rolled-back work.
//
// # The protocol
//
// Each Kafka transaction holds the records of one or more PostgreSQL
// transactions (or a recorded part of a huge one) and, as its last record,
// the relay's Checkpoint on a compacted topic (key = slot). The checkpoint
// names the commit LSN of the last transaction with records in the Kafka
// transaction and how many of its changes are there, so it always
// describes exactly what a read_committed consumer can see. Only after the
// Kafka commit is the end LSN of the last complete transaction confirmed to
// PostgreSQL (standby status update), so the slot never moves past what
// Kafka holds. After a crash PostgreSQL re-sends from the slot's confirmed
// position, which is at or before the checkpoint; the relay skips every
// change the checkpoint covers (commit LSN below it, or the same commit LSN
// and a position below its count). Positions count the changes of a
// transaction in WAL order, excluding aborted subtransactions, which is the
// same whether PostgreSQL streamed the transaction in progress or sent it
// whole at commit. Event ids are (commit LSN, position), so equal across
// deliveries.
//
// On start the relay initialises its transactional producer (transactional
// id "bulwark-cdc-<slot>"), which fences older instances and aborts their
// open transaction, and only then reads the checkpoint: the read is final.
// It reads read_committed to the last stable offset and ends on the fetch
// position, not on seeing the last record, which may be aborted and so
// never returned (checkpoint.go).
//
// # Memory
//
// Non-streamed transactions are produced while they are received. Streamed
// in-progress transactions (protocol v2) are spilled to one file each until
// Stream Commit (then replayed, skipping aborted subtransactions) or Stream
// Abort (deleted): a transaction of any size costs one 64 KiB buffer.
// Kafka buffers at most MaxBufferedRecords; Produce blocks beyond, and the
// replication reader's bounded channel then stops reading, which TCP turns
// into back-pressure on the walsender.
//
// # Concurrency
//
// Run owns one session at a time. A session has the loop goroutine (which
// owns all state, the Kafka transaction and the catalog connection), the
// replication reader (package repl) and the heartbeat goroutine (its own
// connection); the loop stops and waits for both before returning.
//
// # Rejected alternatives
//
// Acknowledging the WAL position on keepalives (what most at-least-once
// tools do) can confirm past changes not yet in Kafka. Keeping the
// checkpoint in PostgreSQL cannot be atomic with the Kafka commit. A
// watermark-based incremental snapshot (DBLog) interleaves snapshot rows
// with later changes of the same key; the exported snapshot keeps "r"
// events at a single consistent point, and the temporary-slot resumption
// in snapshot.go keeps that per key after a crash.
package relay
