package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/bulwark-ledger/bulwark/internal/admission"
	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

// The edge classifies every tenant request for admission control. Routes
// are the business types of the rule table; the rules, quotas and priority
// weights come from the control plane and change without a restart.

// Route names (the "route" dimension of admission rules).
const (
	RoutePayments = "payments" // ledger writes
	RouteAccounts = "accounts" // account creation
	RouteReads    = "reads"    // every GET
	RouteAdmin    = "admin"    // admin API
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
route * 20
traffic batch -20
traffic crawler -60
source partner 10
`

func routeOf(r *http.Request) string {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/admin/"):
		return RouteAdmin
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return RouteReads
	case strings.HasPrefix(r.URL.Path, "/v1/transactions"):
		return RoutePayments
	default:
		return RouteAccounts
	}
}

// edge keeps admission in step with the control plane.
type edge struct {
	ctl     *admission.Controller
	watcher *control.Watcher
	log     *slog.Logger

	mu      sync.RWMutex            // guards applied and traffic
	applied map[string]appliedQuota // tenant -> the quota last given to admission
	traffic map[trafficKey]*trafficBucket
}

type appliedQuota struct {
	version int64
	rps     float64
	burst   int
}

type trafficKey struct{ tenant, traffic string }

type trafficBucket struct {
	version int64
	lim     *rate.Limiter
}

func newEdge(ctl *admission.Controller, w *control.Watcher, log *slog.Logger) *edge {
	return &edge{ctl: ctl, watcher: w, log: log, applied: make(map[string]appliedQuota), traffic: make(map[trafficKey]*trafficBucket)}
}

// trafficQuota enforces the per-tenant quotas of batch and crawler traffic
// (quota.batch.*, quota.crawler.*), which the surge preset tightens. It
// runs after authentication and before admission; the traffic type is the
// claim only when the key is entitled to it.
func (e *edge) trafficQuota(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenant.FromContext(r.Context())
		tt := r.Header.Get(admission.TrafficHeader)
		if p.TenantID == "" || (tt != "batch" && tt != "crawler") || !slices.Contains(p.TrafficTypes, tt) {
			next.ServeHTTP(w, r)
			return
		}
		if !e.trafficBucket(p.TenantID, tt).Allow() {
			problem.Write(w, problem.New(problem.CodeQuotaExceeded,
				"the tenant's "+tt+" traffic quota is spent").With("reason", "traffic_quota").With("stage", "quota"), time.Second)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (e *edge) trafficBucket(tn, tt string) *rate.Limiter {
	snap := e.watcher.Current()
	rps, burst := snap.Float(tn, control.KeyQuotaBatchRPS), int(snap.Int(tn, control.KeyQuotaBatchBurst))
	if tt == "crawler" {
		rps, burst = snap.Float(tn, control.KeyQuotaCrawlerRPS), int(snap.Int(tn, control.KeyQuotaCrawlerBurst))
	}
	rps, burst = max(rps, minRate), max(burst, 1)
	e.mu.Lock()
	defer e.mu.Unlock()
	k := trafficKey{tn, tt}
	b := e.traffic[k]
	if b == nil {
		if len(e.traffic) >= maxEdgeTenants {
			clear(e.traffic)
		}
		b = &trafficBucket{version: snap.Version(), lim: rate.NewLimiter(rate.Limit(rps), burst)}
		e.traffic[k] = b
	} else if b.version != snap.Version() {
		b.version = snap.Version()
		if rate.Limit(rps) > b.lim.Limit() || burst > b.lim.Burst() {
			b.lim = rate.NewLimiter(rate.Limit(rps), burst) // raised: full bucket at once
		} else {
			b.lim.SetLimit(rate.Limit(rps))
			b.lim.SetBurst(burst)
		}
	}
	return b.lim
}

// onChange rebuilds the rule table: the operator's text (or DefaultRules)
// plus a tenant weight line for each tenant whose priority.weight differs
// from the neutral 50. A table that does not parse is refused by the
// setting's validator, so UpdateRules fails only on a programmer error.
func (e *edge) onChange(s *control.Snapshot) error {
	text := s.Text(control.GlobalTenant, control.KeyAdmissionRules)
	if strings.TrimSpace(text) == "" {
		text = DefaultRules
	}
	var b strings.Builder
	b.WriteString(text)
	ts := s.Tenants()
	sort.Strings(ts)
	for _, t := range ts {
		if w := s.Int(t, control.KeyPriorityWeight); w != 50 {
			fmt.Fprintf(&b, "\ntenant %s %d\n", t, int(w-50))
		}
	}
	return e.ctl.UpdateRules([]byte(b.String()))
}

// syncQuota gives tenant its quota from the current settings, once per
// settings version: O(1) map lookup on the request path.
func (e *edge) syncQuota(tn string) {
	snap := e.watcher.Current()
	v := snap.Version()
	// Fast path on every request: the quota is current; a read lock only.
	e.mu.RLock()
	prev, ok := e.applied[tn]
	e.mu.RUnlock()
	if ok && prev.version == v {
		return
	}
	e.mu.Lock()
	prev, ok = e.applied[tn]
	if ok && prev.version == v {
		e.mu.Unlock()
		return
	}
	rps, burst := snap.Float(tn, control.KeyQuotaRPS), int(snap.Int(tn, control.KeyQuotaBurst))
	rps, burst = max(rps, minRate), max(burst, 1)
	if len(e.applied) >= min(maxEdgeTenants, e.ctl.MaxTenantQuotas()) {
		// Start afresh on both sides: admission's table holds exactly the
		// tenants of applied, so it can never be full when one is added
		// (every tenant then re-reads its quota once).
		clear(e.applied)
		if err := e.ctl.SetTenantQuotas(nil); err != nil {
			panic(fmt.Sprintf("edge: clear tenant quotas: %v", err)) // nil is always valid
		}
	}
	if ok && (rps > prev.rps || burst > prev.burst) {
		// A raised quota applies at once with a full bucket; a lowered one
		// keeps the tokens left (they are fewer than the old bucket's).
		e.ctl.RemoveTenantQuota(tn)
	}
	// Under e.mu, so that admission's table changes only with applied.
	if err := e.ctl.SetTenantQuota(tn, rps, burst); err != nil {
		// Values are clamped valid and the table has room (above), so this
		// is a programmer error; leave the tenant unapplied to retry.
		delete(e.applied, tn)
		e.mu.Unlock()
		e.log.Error("edge: tenant quota not applied", "tenant", tn, "err", err)
		return
	}
	e.applied[tn] = appliedQuota{version: v, rps: rps, burst: burst}
	e.mu.Unlock()
}

// minRate stands for a quota of 0 (the bucket must have a positive rate):
// one request per ~11 days after the first.
const minRate = 1e-6

// maxEdgeTenants bounds the quota bookkeeping; past it, it starts afresh
// (every tenant then re-reads its quota once).
const maxEdgeTenants = 100_000

// classify builds the admission request from the authenticated principal.
func (e *edge) classify(r *http.Request) admission.Request {
	p, _ := tenant.FromContext(r.Context())
	req := admission.Request{
		Tenant:  p.TenantID,
		Client:  p.KeyID,
		Route:   routeOf(r),
		Source:  r.Header.Get(admission.SourceHeader),
		Traffic: r.Header.Get(admission.TrafficHeader),
		Entitled: admission.Entitlements{Sources: p.Sources, Traffic: p.TrafficTypes,
			DefaultSource: "", DefaultTraffic: "normal"},
	}
	// Plain account reads can be answered stale when shed (see ledger.API).
	req.StaleOK = r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/accounts/") &&
		!strings.Contains(r.URL.Path[len("/v1/accounts/"):], "/")
	if p.Admin {
		// "*admin" cannot be a tenant id, so no tenant shares its budget.
		req.Tenant, req.Route = "*admin", RouteAdmin
		req.Entitled.Traffic = nil
		return req
	}
	if p.TenantID != "" {
		e.syncQuota(p.TenantID)
	}
	return req
}
