// Package client is the Go client of the Bulwark ledger's HTTP API.
//
// A Client holds one base URL, one API key, a pool of keep-alive
// connections and, unless disabled, a batcher. It is safe for concurrent
// use: create one per server and key, share it, Close it at the end.
//
// Every call takes a ctx first and blocks until the answer, ctx's end, or
// the retry bounds (WithRetry). Errors the server answers are *Error with
// the problem code; match them with errors.Is and the sentinels
// (errors.Is(err, client.ErrInsufficientFunds)). Inputs are validated
// before sending, with the codes the server would answer (an amount that
// is not a canonical decimal string is ErrInvalidAmount without a round
// trip).
//
// Idempotency: every transaction carries an idempotency key, the
// caller's or a random one. Calls are retried with jittered exponential
// backoff, honouring Retry-After, on transport errors and on 503
// commit_failed, overloaded, shutting_down and read_failed, each retry
// with the same keys, so a transaction commits at most once. Other 4xx
// are never retried, nor is 429 quota_exceeded: it is the caller's own
// quota, and retrying spends it further (see Error.Temporary). Admin calls
// that are not idempotent (tenant and key creation, presets) are retried
// only on overloaded, which says the request was not started.
//
// Automatic batching: concurrent Transfer calls are coalesced into
// POST /v1/transactions/batch requests of at most WithBatching's maxItems
// transfers, sent linger after the first one arrived; each caller gets its
// own transaction or error. See batcher for the bounds and what happens
// when they are reached.
//
// The package imports nothing of Bulwark's internal packages, so that any
// Go program can use it.
package client
