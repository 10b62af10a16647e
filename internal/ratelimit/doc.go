// Package ratelimit throttles background work: token buckets keyed by
// (tenant, task type, partition) whose rates follow the live settings of the
// control plane (control.TaskRateKey: "tasks.<task>.rate_per_partition").
//
// A rate of 0 pauses a task type: Try fails and Wait blocks until the rate
// rises or its context ends. Any settings change wakes every waiter, which
// re-reads its rate, so setting a rate to 0 stops work that is waiting for a
// token, and raising it resumes paused work within one propagation delay of
// the control plane (well under a second).
//
// Each bucket holds up to one second of tokens (burst = max(1, ceil(rate))),
// so a worker idle for a while can do at most one second's work at once.
//
// Buckets are bounded by MaxBuckets; when full, the least recently used
// bucket that nobody is waiting on is evicted (its next user starts with a
// full bucket). If every candidate has waiters, Wait returns
// ErrTooManyBuckets and Try returns false; both are counted in metrics.
//
// Concurrency: a Limiter is safe for concurrent use. One mutex guards the
// bucket table and LRU list; token arithmetic happens in x/time/rate's own
// per-bucket lock, outside it. Wait never holds a lock while blocking.
package ratelimit
