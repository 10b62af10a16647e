package edge

import (
	"net/http/httptest"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/admission"
)

// TestFeatureRoutesRankBetweenPaymentsAndReads: feature reads and
// evaluate are the route class "features", whose priority level (not only
// its weight: shedding goes by level) under DefaultRules lies below
// payments and above ordinary reads; event ingestion is the class
// "events", below the features and not above reads.
func TestFeatureRoutesRankBetweenPaymentsAndReads(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/v1/features/card/c-1", RouteFeatures},
		{"POST", "/v1/features/evaluate", RouteFeatures},
		{"POST", "/v1/features/read", RouteFeatures},
		{"POST", "/v1/features/definitions", RouteFeatures},
		{"POST", "/v1/events", RouteEvents},
		{"GET", "/v1/accounts/a", RouteReads},
		{"POST", "/v1/transactions", RoutePayments},
	} {
		if got := routeOf(httptest.NewRequest(c.method, c.path, nil)); got != c.want {
			t.Errorf("%s %s: route %q, want %q", c.method, c.path, got, c.want)
		}
	}
	rules, err := admission.ParseRules([]byte(DefaultRules))
	if err != nil {
		t.Fatal(err)
	}
	w := func(route string) int64 { return rules.Weight(&admission.Request{Route: route}) }
	if !(w(RoutePayments) > w(RouteFeatures) && w(RouteFeatures) > w(RouteReads) && w(RouteReads) >= w(RouteEvents)) {
		t.Fatalf("weights: payments %d, features %d, reads %d, events %d", w(RoutePayments), w(RouteFeatures), w(RouteReads), w(RouteEvents))
	}
	// A higher Priority is a higher level.
	p := func(route string) admission.Priority { return rules.Classify(&admission.Request{Route: route}) }
	if !(p(RoutePayments) > p(RouteFeatures) && p(RouteFeatures) > p(RouteReads) && p(RouteReads) >= p(RouteEvents)) {
		t.Fatalf("levels: payments %d, features %d, reads %d, events %d", p(RoutePayments), p(RouteFeatures), p(RouteReads), p(RouteEvents))
	}
}

// TestExportsAreBackground: every export route is the exports route
// class, which the default rules weigh below reads and payments, so under
// overload exports are shed first.
func TestExportsAreBackground(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"POST", "/v1/exports", RouteExports},
		{"GET", "/v1/exports", RouteExports},
		{"GET", "/v1/exports/0190f1e2-0000-7000-8000-000000000001", RouteExports},
		{"GET", "/v1/exports/0190f1e2-0000-7000-8000-000000000001/download", RouteExports},
		{"DELETE", "/v1/exports/x", RouteExports},
		{"GET", "/v1/exportsx", RouteReads},
		{"POST", "/v1/transactions", RoutePayments},
	} {
		if got := routeOf(httptest.NewRequest(c.method, c.path, nil)); got != c.want {
			t.Errorf("%s %s: route %s, want %s", c.method, c.path, got, c.want)
		}
	}
	rules, err := admission.ParseRules([]byte(DefaultRules))
	if err != nil {
		t.Fatal(err)
	}
	w := func(route string) int64 { return rules.Weight(&admission.Request{Tenant: "t", Route: route}) }
	if !(w(RouteExports) < w(RouteReads) && w(RouteReads) < w(RoutePayments)) {
		t.Fatalf("weights: exports %d, reads %d, payments %d", w(RouteExports), w(RouteReads), w(RoutePayments))
	}
	if rules.Classify(&admission.Request{Route: RouteExports}) >= rules.Classify(&admission.Request{Route: RoutePayments}) {
		t.Fatal("exports are not below payments")
	}
}
