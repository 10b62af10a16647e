// Package rehearsal is `bulwark load`: a surge rehearsal against a running
// Bulwark. It finds the capacity of the top class (payments), then offers
// multiples of it (1×, 2×, 4×, 10× by default) with a mix of classes, and
// judges the result against objectives, so that it can gate a deployment.
//
// # Load model
//
// Arrivals are open (as in k6's arrival-rate executors): they are due on a
// fixed schedule, evenly spaced, whatever the server answers. An arrival
// due while MaxInFlight requests are outstanding is not sent and counts as
// dropped. Every arrival ends in exactly one of four outcomes, so per
// stage and class
//
//	offered = achieved + rejected + dropped + errors
//
// achieved: answered 2xx; rejected: answered 429 or 503 (counted by
// problem code); errors: transport failures, timeouts and every other
// status; dropped: not sent. The invariant is asserted on every stage.
//
// # Requests
//
// Requests go through the public client package, one request per arrival
// (batching off) and no retries (WithRetry(1, …)): a retry would turn a
// rejection into a later success and hide it. A class's Bulwark-Traffic
// claim is set by the client's transport (the client has no per-call
// headers).
//
// # Concurrency
//
// A stage owns its goroutines: the scheduler, one goroutine per request in
// flight (at most MaxInFlight), and the progress printer; the stage returns
// only when all have ended. Nothing outlives Run.
package rehearsal
