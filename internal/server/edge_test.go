package server_test

import (
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/server"
)

// TestQuotaFromControlPlaneAppliesLive sets a tenant's request quota through
// the admin API of a running server and expects 429 problem+json (stage,
// reason, Retry-After) within a second, without a restart; unsetting it
// restores service. Another tenant is unaffected.
func TestQuotaFromControlPlaneAppliesLive(t *testing.T) {
	t.Parallel()
	admin, _ := startServer(t)
	acme, other := newTenant(t, admin, "acme"), newTenant(t, admin, "other")
	set := map[string]any{"set": map[string]string{"quota.requests_per_sec": "1", "quota.burst": "2"}, "reason": "test"}
	if r := admin.do(t, "PATCH", "/v1/admin/settings/tenants/acme", set); r.status != 200 {
		t.Fatalf("set quota: %d %s", r.status, r.raw)
	}
	var limited response
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if limited = acme.do(t, "GET", "/v1/accounts/none", nil); limited.status == 429 {
			break
		}
	}
	if limited.status != 429 || limited.body["code"] == nil || limited.body["reason"] != "quota" || limited.header.Get("Retry-After") == "" {
		t.Fatalf("over quota: %d %s (Retry-After %q)", limited.status, limited.raw, limited.header.Get("Retry-After"))
	}
	for range 5 {
		if r := other.do(t, "GET", "/v1/accounts/none", nil); r.status != 404 {
			t.Fatalf("other tenant affected by acme's quota: %d", r.status)
		}
	}
	unset := map[string]any{"unset": []string{"quota.requests_per_sec", "quota.burst"}, "reason": "test"}
	r := admin.do(t, "PATCH", "/v1/admin/settings/tenants/acme", unset)
	if r.status != 200 {
		t.Fatalf("unset quota: %d %s", r.status, r.raw)
	}
	waitApplied(t, admin, r) // the raised quota starts with a full bucket
	ok := 0
	for range 20 {
		if r := acme.do(t, "GET", "/v1/accounts/none", nil); r.status == 404 {
			ok++
		} else {
			t.Logf("after unset: %d %s", r.status, r.raw)
		}
	}
	if ok != 20 {
		t.Fatalf("after unsetting the quota %d of 20 requests passed", ok)
	}
}

// TestUnentitledClaimsAreDowngraded: a key without entitlements claiming
// partner source is served (claims are downgraded, not refused) and the
// rules table refuses garbage through the control API, changing nothing.
func TestBadRulesAreRefusedAndChangeNothing(t *testing.T) {
	t.Parallel()
	admin, _ := startServer(t)
	c := newTenant(t, admin, "acme")
	bad := map[string]any{"set": map[string]string{"admission.rules": "level top banana"}, "reason": "test"}
	if r := admin.do(t, "PATCH", "/v1/admin/settings/tenants/*", bad); r.status != 422 {
		t.Fatalf("bad rules: %d %s", r.status, r.raw)
	}
	if r := c.do(t, "GET", "/v1/accounts/none", nil, "Bulwark-Source", "partner", "Bulwark-Traffic", "crawler"); r.status != 404 {
		t.Fatalf("request with unentitled claims: %d %s", r.status, r.raw)
	}
	if r := admin.do(t, "GET", "/v1/admin/settings/history", nil); r.status != 200 || len(r.raw) == 0 {
		t.Fatalf("history: %d", r.status)
	}
}

// TestSurgePresetTightensCrawlerQuota applies the surge preset through the
// admin API: an entitled crawler key is limited to the preset's 5/s within
// a second, normal traffic of the same tenant is not, and revert restores
// the default crawler quota.
func TestSurgePresetTightensCrawlerQuota(t *testing.T) {
	t.Parallel()
	admin, _ := startServer(t)
	newTenant(t, admin, "acme")
	r := admin.do(t, "POST", "/v1/admin/tenants/acme/api-keys", map[string]any{"traffic_types": []string{"crawler"}})
	if r.status != 201 {
		t.Fatalf("crawler key: %d %s", r.status, r.raw)
	}
	bot := &client{base: admin.base, key: r.body["key"].(string), http: admin.http}
	crawl := func() int { return bot.do(t, "GET", "/v1/accounts/none", nil, "Bulwark-Traffic", "crawler").status }
	r = admin.do(t, "POST", "/v1/admin/presets/surge/apply", map[string]string{"tenant": "acme", "reason": "test"})
	if r.status != 200 {
		t.Fatalf("apply surge: %d %s", r.status, r.raw)
	}
	waitApplied(t, admin, r)
	limited := 0
	for range 20 {
		if crawl() == 429 {
			limited++
		}
	}
	if limited < 10 {
		t.Fatalf("surge: %d of 20 rapid crawler requests limited, want most (5/s, burst 5)", limited)
	}
	if s := bot.do(t, "GET", "/v1/accounts/none", nil).status; s != 404 {
		t.Fatalf("normal traffic of the same key under surge: %d", s)
	}
	r = admin.do(t, "POST", "/v1/admin/presets/surge/revert", map[string]string{"tenant": "acme", "reason": "test"})
	if r.status != 200 {
		t.Fatalf("revert surge: %d %s", r.status, r.raw)
	}
	waitApplied(t, admin, r) // the raised crawler quota starts with a full bucket
	for i := range 10 {
		if s := crawl(); s != 404 {
			t.Fatalf("after revert, crawler request %d: %d", i, s)
		}
	}
}

// TestPriorityWeightRaisesTenantLevel: a tenant's priority.weight from the
// control plane moves its requests to a higher admission level, seen in the
// priority member of its (quota) rejections.
func TestPriorityWeightRaisesTenantLevel(t *testing.T) {
	t.Parallel()
	admin, _ := startServer(t)
	c := newTenant(t, admin, "acme")
	levelOf429 := func() float64 {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			if r := c.do(t, "GET", "/v1/accounts/none", nil); r.status == 429 {
				return r.body["priority"].(float64)
			}
		}
		t.Fatal("no 429 within 3 s")
		return 0
	}
	set := func(kv map[string]string) {
		t.Helper()
		r := admin.do(t, "PATCH", "/v1/admin/settings/tenants/acme", map[string]any{"set": kv, "reason": "test"})
		if r.status != 200 {
			t.Fatalf("set %v: %d %s", kv, r.status, r.raw)
		}
		waitApplied(t, admin, r)
	}
	set(map[string]string{"quota.requests_per_sec": "1", "quota.burst": "1"})
	before := levelOf429()
	set(map[string]string{"priority.weight": "100"})
	after := levelOf429()
	if after <= before {
		t.Fatalf("priority level %v after raising the weight, %v before", after, before)
	}
}

// waitStatus sends req until it answers want or 3 s pass (settings reach
// every process within a second), and returns the last answer.
func waitStatus(t *testing.T, c *client, want int, method, path string, hdr ...string) response {
	t.Helper()
	var r response
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		if r = c.do(t, method, path, nil, hdr...); r.status == want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// TestQuotasApplyBeyondTheQuotaTable: with room for 2 tenant quotas in
// admission, a third tenant's quota still applies (the edge starts its
// bookkeeping afresh instead of silently dropping the quota).
func TestQuotasApplyBeyondTheQuotaTable(t *testing.T) {
	t.Parallel()
	admin, _ := startServerWith(t, t.TempDir(), func(c *server.Config) { c.Admission.MaxTenantQuotas = 2 },
		server.RoleAPI, server.RoleWorkers)
	ids := []string{"t1", "t2", "t3"}
	clients := map[string]*client{}
	for _, id := range ids {
		clients[id] = newTenant(t, admin, id)
		set := map[string]any{"set": map[string]string{"quota.requests_per_sec": "0", "quota.burst": "1"}, "reason": "test"}
		if r := admin.do(t, "PATCH", "/v1/admin/settings/tenants/"+id, set); r.status != 200 {
			t.Fatalf("set quota: %d %s", r.status, r.raw)
		}
	}
	for _, id := range ids {
		if r := waitStatus(t, clients[id], 429, "GET", "/v1/accounts/none"); r.status != 429 || r.body["reason"] != "quota" {
			t.Fatalf("tenant %s with quota 0: %d %s", id, r.status, r.raw)
		}
	}
}

// TestBatchTrafficBurstIsItsOwnSetting: quota.batch.burst sets the depth of
// the batch traffic bucket (it once read the rate key instead).
func TestBatchTrafficBurstIsItsOwnSetting(t *testing.T) {
	t.Parallel()
	admin, _ := startServer(t)
	if r := admin.do(t, "POST", "/v1/admin/tenants", map[string]string{"id": "acme"}); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.raw)
	}
	k := admin.do(t, "POST", "/v1/admin/tenants/acme/api-keys", map[string]any{"traffic_types": []string{"batch"}})
	if k.status != 201 {
		t.Fatalf("create key: %d %s", k.status, k.raw)
	}
	c := &client{base: admin.base, key: k.body["key"].(string), http: admin.http}
	set := map[string]any{"set": map[string]string{"quota.batch.requests_per_sec": "0", "quota.batch.burst": "4"}, "reason": "test"}
	r := admin.do(t, "PATCH", "/v1/admin/settings/tenants/acme", set)
	if r.status != 200 {
		t.Fatalf("set batch quota: %d %s", r.status, r.raw)
	}
	waitApplied(t, admin, r)
	passed := 0
	for range 8 {
		if r := c.do(t, "GET", "/v1/accounts/none", nil, "Bulwark-Traffic", "batch"); r.status == 404 {
			passed++
		} else if r.status != 429 || r.body["reason"] != "traffic_quota" {
			t.Fatalf("batch request: %d %s", r.status, r.raw)
		}
	}
	if passed != 4 {
		t.Fatalf("%d of 8 batch requests passed with quota.batch.burst 4 and no refill, want 4", passed)
	}
}

// waitApplied waits until this process has applied the settings version
// that the change answered r reports (bulwark_control_applied_version is
// set once admission has the new rules and quotas): no fixed sleeps.
func waitApplied(t *testing.T, c *client, r response) {
	t.Helper()
	want, ok := r.body["version"].(float64)
	if !ok {
		t.Fatalf("settings change without a version: %s", r.raw)
	}
	deadline := time.Now().Add(3 * time.Second)
	for metricValue(t, c, "bulwark_control_applied_version") < want {
		if time.Now().After(deadline) {
			t.Fatalf("settings version %v not applied within 3 s (propagation budget 1 s)", want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
