package edge

import (
	"net/http"
	"net/url"
	"strings"
)

// Route names (the "route" dimension of admission rules): the business
// type of an endpoint.
const (
	RoutePayments = "payments" // ledger writes
	RouteAccounts = "accounts" // account creation
	RouteReads    = "reads"    // every GET
	RouteFeatures = "features" // feature reads, evaluate, definitions
	RouteEvents   = "events"   // bulk event ingestion (POST /v1/events)
	RouteAdmin    = "admin"    // admin API
	RouteExports  = "exports"  // export jobs and downloads: background work
)

// DefaultRules apply when the control plane's admission.rules is empty.
// Payments are the top level, never shed by overload control (only by
// their tenant's quota and the hard cap); crawlers are shed first. Feature
// reads and evaluate (the risk check a payment authorization waits on)
// have a level of their own, "elevated", between accounts and ordinary
// reads: shedding is by level, so a weight inside "normal" would not rank
// them above reads. Bulk event ingestion is "normal", beside reads: under
// a surge it is shed (and retried by its senders) before the risk checks.
const DefaultRules = `# level NAME MIN_WEIGHT, highest first
level critical 100
level high 60
level elevated 40
level normal 20
level low
route payments 100
route admin 100
route accounts 60
route features 45
route reads 30
route events 25
route exports 10
route * 20
traffic batch -20
traffic crawler -60
source partner 10
`

func routeOf(r *http.Request) string {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/admin/"):
		return RouteAdmin
	case strings.HasPrefix(r.URL.Path, "/v1/features/"):
		// Below payments (an authorization's risk check waits on it) and
		// above ordinary reads.
		return RouteFeatures
	case r.URL.Path == "/v1/events":
		// Bulk ingestion: its senders retry a 503, and a surge of it must
		// not shed the risk checks that read what it feeds.
		return RouteEvents
	case r.URL.Path == "/v1/exports" || strings.HasPrefix(r.URL.Path, "/v1/exports/"):
		// Background work: under overload it is shed before reads and
		// payments (weight 10 < reads 30 < payments 100).
		return RouteExports
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return RouteReads
	case strings.HasPrefix(r.URL.Path, "/v1/transactions"):
		return RoutePayments
	default:
		return RouteAccounts
	}
}

// RouteClass names the route of a mux pattern as it is recorded in the
// "route" label of bulwark_http_requests_total ("POST /v1/transactions")
// with the route names admission uses, or "ops" for paths outside /v1/
// (metrics, health, OpenAPI, console). The console groups request rates
// and latencies by it.
func RouteClass(pattern string) string {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	if !strings.HasPrefix(path, "/v1/") {
		return "ops"
	}
	if method == "" {
		method = http.MethodPost // a method-less /v1/ pattern: not a read
	}
	return routeOf(&http.Request{Method: method, URL: &url.URL{Path: path}})
}

// staleOK marks plain account reads, which can be answered from a stale
// copy when shed (see AccountReads).
func staleOK(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/accounts/") &&
		!strings.Contains(r.URL.Path[len("/v1/accounts/"):], "/")
}
