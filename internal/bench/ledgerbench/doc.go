// Package ledgerbench measures the ledger end to end: a fresh database per
// run, the real HTTP server in-process on a loopback port, and closed-loop
// clients that post transfers through the public API. The same run measures
// the commit pipeline and the naive baseline (one database transaction per
// request, SELECT … FOR UPDATE, no batching) side by side, so that the
// ratio between them is meaningful on any machine; absolute numbers are not.
//
// One run is one (mode, request type) pair of a workload:
//
//  1. CREATE DATABASE bench_… on the PostgreSQL server, then server.Run on
//     it with that mode (the server migrates it);
//  2. a tenant and key through the admin API, the accounts in one COPY;
//  3. Clients goroutines, each with at most one request in flight, post
//     transfers for Warmup + Duration; only requests that finish inside the
//     measured window count towards throughput and latency, but an error at
//     any time counts. The window lasts Duration, or longer until every
//     client has finished a request inside it (requests as slow as the
//     window would otherwise measure zero); results report its length;
//  4. stop the server (drains in-flight requests and the pipeline), check
//     every ledger invariant with verify.Run plus "every acknowledged
//     transfer is stored", and drop the database.
//
// Mode floor runs no server (see floor.go): the cheapest PostgreSQL commits
// of the same in-flight transfers, on its own database, checked after the
// run, so a missed target can be told apart from a slow server.
//
// Concurrency: Run owns every goroutine it starts (clients, the server) and
// waits for them before it returns. Memory is bounded: latencies go into a
// fixed-size histogram per client (see histogram), not a growing slice.
package ledgerbench
