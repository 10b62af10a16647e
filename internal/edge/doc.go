// Package edge is the HTTP front door of Bulwark: every tenant request goes
// authentication (tenant.Store) → classification (route taxonomy, source and
// traffic claims) → admission (quotas, priority, staged shedding; see
// package admission) → the routes of the domain packages (ledger, tenant,
// control). It also serves what every process serves whatever its roles:
// /metrics, /healthz, /readyz and the API contract at /openapi.yaml.
//
// Settings flow one way: on every control-plane change, Apply rebuilds the
// admission rule table (the operator's text or DefaultRules, plus a weight
// line per tenant whose priority.weight is not neutral) and the full quota
// set (defaults, tenant overrides, batch and crawler traffic quotas), and
// hands both to admission, which owns every bucket. The edge keeps no
// quota state of its own.
//
// Domain packages never import edge: it wraps them (the coalesced, stale-
// on-failure account read is the edge's AccountReads given to ledger.API).
package edge
