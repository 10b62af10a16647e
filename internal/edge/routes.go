package edge

import (
	"net/http"
	"strings"
)

// Route names (the "route" dimension of admission rules): the business
// type of an endpoint.
const (
	RoutePayments = "payments" // ledger writes
	RouteAccounts = "accounts" // account creation
	RouteReads    = "reads"    // every GET
	RouteAdmin    = "admin"    // admin API
	RouteExports  = "exports"  // export jobs and downloads: background work
)

// DefaultRules apply when the control plane's admission.rules is empty.
// Payments are the top level, never shed by overload control (only by
// their tenant's quota and the hard cap); crawlers are shed first.
const DefaultRules = `# level NAME MIN_WEIGHT, highest first
level critical 100
level high 60
level normal 20
level low
route payments 100
route admin 100
route accounts 60
route reads 30
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

// staleOK marks plain account reads, which can be answered from a stale
// copy when shed (see AccountReads).
func staleOK(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/accounts/") &&
		!strings.Contains(r.URL.Path[len("/v1/accounts/"):], "/")
}
