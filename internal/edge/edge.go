package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/bulwark-ledger/bulwark/internal/admission"
	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

// Edge links admission to the control plane and classifies requests.
type Edge struct {
	ctl *admission.Controller
	log *slog.Logger
}

// New returns the edge of ctl.
func New(ctl *admission.Controller, log *slog.Logger) *Edge {
	return &Edge{ctl: ctl, log: log}
}

// Apply hands the settings of s to admission: the rule table and every
// quota. Call it with the current snapshot at start and on every change
// (control.Watcher.OnChange). Settings are validated when stored, so an
// error here is a programmer error or a quota set past admission's
// MaxTenantQuotas; admission then keeps the previous values.
func (e *Edge) Apply(s *control.Snapshot) error {
	if err := e.ctl.UpdateRules([]byte(rulesText(s))); err != nil {
		return fmt.Errorf("admission rules: %w", err)
	}
	if err := e.ctl.SetQuotas(QuotaSet(s)); err != nil {
		return fmt.Errorf("admission quotas: %w", err)
	}
	return nil
}

// rulesText is the operator's rule table (or DefaultRules) plus a tenant
// weight line for each tenant whose priority.weight differs from the
// neutral 50.
func rulesText(s *control.Snapshot) string {
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
	return b.String()
}

// quotaKeys are the settings of each quota class: rate and burst.
var quotaKeys = []struct{ class, rate, burst string }{
	{admission.ClassAll, control.KeyQuotaRPS, control.KeyQuotaBurst},
	{admission.ClassBatch, control.KeyQuotaBatchRPS, control.KeyQuotaBatchBurst},
	{admission.ClassCrawler, control.KeyQuotaCrawlerRPS, control.KeyQuotaCrawlerBurst},
}

// minRate stands for a quota of 0 (a bucket must have a positive rate):
// one request per ~11 days after the first.
const minRate = 1e-6

// QuotaSet derives every request quota from s: the global values (or
// defaults) for tenants without overrides, and an override for each
// tenant whose values differ.
func QuotaSet(s *control.Snapshot) admission.QuotaSet {
	limit := func(tenant, rate, burst string) admission.Limit {
		return admission.Limit{PerSec: max(s.Float(tenant, rate), minRate), Burst: max(int(s.Int(tenant, burst)), 1)}
	}
	set := admission.QuotaSet{Default: make(map[string]admission.Limit, len(quotaKeys)),
		Tenants: make(map[string]map[string]admission.Limit)}
	for _, k := range quotaKeys {
		set.Default[k.class] = limit(control.GlobalTenant, k.rate, k.burst)
	}
	for _, t := range s.Tenants() {
		if t == control.GlobalTenant {
			continue
		}
		for _, k := range quotaKeys {
			if l := limit(t, k.rate, k.burst); l != set.Default[k.class] {
				if set.Tenants[t] == nil {
					set.Tenants[t] = make(map[string]admission.Limit, len(quotaKeys))
				}
				set.Tenants[t][k.class] = l
			}
		}
	}
	return set
}

// classify builds the admission request from the authenticated principal.
func (e *Edge) classify(r *http.Request) admission.Request {
	p, _ := tenant.FromContext(r.Context())
	req := admission.Request{
		Tenant:  p.TenantID,
		Client:  p.KeyID,
		Route:   routeOf(r),
		Source:  r.Header.Get(admission.SourceHeader),
		Traffic: r.Header.Get(admission.TrafficHeader),
		Entitled: admission.Entitlements{Sources: p.Sources, Traffic: p.TrafficTypes,
			DefaultSource: "", DefaultTraffic: "normal"},
		StaleOK: staleOK(r),
	}
	if p.Admin {
		// "*admin" cannot be a tenant id, so no tenant shares its budget,
		// and admission applies no tenant quota to it.
		req.Tenant, req.Route = "*admin", RouteAdmin
		req.Entitled.Traffic = nil
	}
	return req
}

// AccountReads adapts reads (coalesced, fresh, stale only when shed or
// failing) to the ledger's account read hook.
func AccountReads(reads *admission.Reads[ledger.Account]) ledger.AccountReads {
	return func(ctx context.Context, tn, id string, read func(context.Context) (ledger.Account, error)) (ledger.Account, bool, error) {
		return reads.Do(ctx, tn+"\x00"+id, read)
	}
}
