// Package admission decides at the HTTP edge which requests the server
// takes on, so that under a surge it keeps serving the most valuable traffic
// at normal latency instead of serving everything slowly and then nothing.
//
// # Classification
//
// A Request carries five dimensions: tenant, route (business type), source
// (app, web, partner…), client and traffic type (normal, batch, crawler…).
// A rule table (Rules, parsed from text or JSON by ParseRules) gives each
// value a weight; the weights add up and the sum falls into one of up to
// MaxLevels ordered priority levels. Source and traffic type are claims
// from headers, so they count only if the API key's Entitlements list them;
// otherwise the key's default replaces them. A client therefore cannot raise
// its priority by sending headers. Rules are swapped atomically at run time
// (SetRules, UpdateRules); a table that does not parse changes nothing.
//
// # Stages
//
//  1. Normal. In-flight work is below the capacity estimate and the
//     shedding threshold is 0: everything is admitted.
//  2. Shedding. Requests below the highest level are admitted only while
//     in-flight work is below the estimate, and only if their level passes
//     the threshold. The threshold x ∈ [0, top] is an integrator run every
//     ControlInterval on the overflow, the share of eligible requests that
//     found no room: it rises while more eligible traffic arrives than the
//     estimate can hold and relaxes otherwise, so the lowest levels are shed
//     first and the levels above share the room. Level floor(x) is admitted
//     for a share 1-frac(x), so the threshold moves smoothly between levels.
//  3. Collapse. In-flight work at CollapseFactor × the estimate, or a window
//     mean latency CollapseQueueDelay above the baseline: everything but the
//     highest level is rejected until the condition clears.
//
// The highest level is never shed by the stages or by the burst limiter
// (which counts it but does not limit it), only by its tenant's quota and
// the MaxInflight hard cap. Tenant quotas (token buckets) answer 429; every
// other rejection answers 503. Both carry Retry-After and a problem+json
// body with members stage, reason and priority.
//
// The burst ("bottom") limiter caps the requests admitted in any sliding
// BurstWindow (default 100 ms, in 10 buckets): a surge packed into a few
// milliseconds passes a per-second limit, and it passes the concurrency
// estimate too while the requests are still fast, but not this.
//
// # Capacity estimate
//
// The estimate is a concurrency limit in [MinLimit, MaxLimit], moved once
// per window (at least Window and one mean latency, MinWindowSamples
// successes, at most MaxWindow) by a latency gradient against a baseline:
//
//	drops > DropTolerance: limit × DropBackoff (and see below)
//	rtt > baseline × (1+Tolerance): limit × max(0.5, baseline×(1+Tolerance)/rtt)
//	otherwise, if the window used ≥ half the limit: limit + √limit
//
// where rtt is the window's mean latency of Success completions and the
// baseline is the lowest window mean seen since the last probe. Every
// ProbeInterval one window runs at ProbeFraction of the limit; only requests
// admitted one latency into it are sampled (earlier ones wait behind the
// queue of the full limit), and its mean becomes the baseline.
//
// It cannot drift upward under steady timeouts. Timeouts (Outcome Dropped)
// are not latency samples, so a limiter that looks only at latency sees the
// quick answers, takes the backend for fast and feeds it more. Here a window
// with drops over DropTolerance cuts the limit whatever its latency. And a
// drop arrives one drop delay (the timeout) after its request was admitted,
// long after the successes of the same requests, so windows without drops
// prove nothing until the drops of the current limit are due: no increase
// for one drop delay after any drop, and while drops are recent (within 10
// drop delays) at most one increase per drop delay, so a lucky run of clean
// windows cannot compound. Under steady timeouts the limit falls to the
// floor and stays near it (TestNoUpwardDriftUnderTimeouts); the price is
// that a steady trickle of timeouts holds the limit from rising much until
// the trickle stops. The baseline cannot creep up with queueing either:
// between probes it only goes down, and a probe measures at a quarter of
// the limit.
//
// It cannot pin itself low. A baseline measured too low (a spell of cache
// hits) would make every later window look queued and hold the limit at the
// floor for good; the probe replaces the baseline, upward too, at most
// ProbeInterval later. The probe itself never lowers the limit: the limit is
// restored when the probe window closes. Stage 3 from queueing delay cannot
// stick: a window without samples resets the delay, so the stage is
// re-tested with live traffic. Completions of requests admitted before a
// cut are not sampled, so one congestion event is answered by one cut, not
// one per window until the old requests drain.
//
// # Concurrency and cost
//
// Controller starts no goroutine. Admit and Ticket.Done use atomics only,
// except the tenant's token bucket and, if enabled, the burst limiter (a
// mutex each, held for tens of nanoseconds); the window and threshold
// updates run in whichever call first sees them due, under TryLock, so no
// request ever waits for another. The accept path allocates nothing
// (TestAdmitAcceptPathAllocs); BenchmarkAdmit measures it.
//
// # Reads
//
// Reads coalesces identical concurrent reads into few backend calls, each
// started after every caller it answers arrived (so a client always sees
// its own acknowledged writes), and keeps the last value of each key. Only
// when a read is shed (Request.StaleOK lets the middleware pass it on with
// the rejection in its context) or the backend fails does it serve that
// value, up to MaxStale old, and the handler marks the answer with
// StaleHeader.
package admission
