// Package console serves the operator console at /console: one page with
// the overview (admission, requests by route class, the ledger commit
// pipeline), the levers (tenant settings, presets, audit history, the
// settings version this process applies), the change stream and the
// background tasks, and the exports queue.
//
// Sources. The console keeps no state of its own besides sessions. Its
// figures come from the process's Prometheus registry (the series
// /metrics serves), gathered when a page polls and turned into rates and
// quantiles over the last few seconds; its task rates from the settings
// snapshot the process applies; its settings reads and changes are
// requests to the control admin API (/v1/admin/…) sent through the front
// door with the signed-in admin key, so they are validated, persisted and
// audited exactly as the CLI's.
//
// Sessions. Sign-in takes the admin key (a tenant key is refused) and
// sets an HTTP-only, SameSite=Strict cookie (Secure over TLS) holding a
// random 256-bit id; the key stays in the server-side session table
// (MaxSessions, idle and absolute expiry). Every change needs the
// session's synchronizer token in X-CSRF-Token and a same-origin request;
// settings and preset changes also need a reason. Sessions live in one
// process's memory: a restart signs everyone out, and behind a load
// balancer the console needs session affinity.
//
// Concurrency: handlers run on the HTTP server's goroutines; the session
// table, the metric sampler and the tenant list each have their own
// mutex, never held together.
package console
