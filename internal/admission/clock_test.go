package admission

import (
	"sync/atomic"
	"time"
)

// fakeClock is a manual clock for deterministic tests.
type fakeClock struct{ ns atomic.Int64 }

var fakeEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (f *fakeClock) Now() time.Time          { return fakeEpoch.Add(time.Duration(f.ns.Load())) }
func (f *fakeClock) Advance(d time.Duration) { f.ns.Add(int64(d)) }
func (f *fakeClock) Set(d time.Duration)     { f.ns.Store(int64(d)) }
func (f *fakeClock) Since0() time.Duration   { return time.Duration(f.ns.Load()) }

// testRules: three levels. Payments reach "critical", ordinary reads
// "normal", crawlers "low".
const testRulesText = `# bulwark admission rules v1
level critical 100
level normal 0
level low
route payments 100
route reads 10
traffic crawler -50
source partner 5
`

func mustRules(text string) *Rules {
	r, err := ParseRules([]byte(text))
	if err != nil {
		panic(err)
	}
	return r
}

var (
	reqPayment = Request{Tenant: "t1", Route: "payments"}
	reqRead    = Request{Tenant: "t1", Route: "reads"}
	reqCrawler = Request{Tenant: "t1", Route: "reads", Traffic: "crawler",
		Entitled: Entitlements{Traffic: []string{"crawler"}}}
)
