// Package repl is a PostgreSQL streaming-replication client for logical
// decoding, written on pgx's pgconn: IDENTIFY_SYSTEM, replication slots
// (with an exported snapshot), START_REPLICATION and the CopyBoth sub-protocol
// (XLogData, primary keepalive, standby status update).
//
// Concurrency: after StartReplication a Stream owns one reader goroutine that
// receives CopyData messages into a bounded channel (MaxBufferedFrames); it
// blocks, and so applies back-pressure to the server over TCP, when the
// channel is full. Status updates are written by the caller's goroutine
// under a mutex; reading and writing a net.Conn concurrently is safe. Close
// stops the reader and waits for it.
package repl
