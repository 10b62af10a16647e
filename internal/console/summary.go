package console

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/control"
)

// Summary is what GET /console/api/summary answers: every live figure the
// console shows, derived from the process's Prometheus registry (the
// series /metrics serves) and the settings snapshot the process applies.
// Nullable figures (rates, quantiles) are null until two gathers exist or
// when the metric is absent from this process.
type Summary struct {
	At            time.Time `json:"at"`
	WindowSeconds float64   `json:"window_seconds"` // span of the rates; 0 before the second gather
	HTTP          HTTPStats `json:"http"`
	Admission     Admission `json:"admission"`
	Ledger        Ledger    `json:"ledger"`
	Control       Control   `json:"control"`
	CDC           CDC       `json:"cdc"`
	Tasks         Tasks     `json:"tasks"`
	Exports       Exports   `json:"exports"`
	Gaps          []string  `json:"gaps,omitempty"` // parts this process does not run
	Tenants       []string  `json:"tenants"`
}

// HTTPStats are the request figures by route class.
type HTTPStats struct {
	InFlight *float64   `json:"in_flight"`
	Classes  []ClassRow `json:"classes"`
}

// ClassRow is one route class (payments, accounts, reads, admin, ops).
type ClassRow struct {
	Class     string   `json:"class"`
	PerSec    *float64 `json:"per_sec"`
	ShedPerS  *float64 `json:"shed_per_sec"`   // 429 and 503 answers
	ErrorPerS *float64 `json:"errors_per_sec"` // other 5xx answers
	P99Ms     *float64 `json:"p99_ms"`
}

// Admission is the admission controller's state.
type Admission struct {
	Stage            *float64    `json:"stage"`
	CapacityEstimate *float64    `json:"capacity_estimate"`
	InFlight         *float64    `json:"in_flight"`
	ShedThreshold    *float64    `json:"shed_threshold"`
	QueueDelayMs     *float64    `json:"queue_delay_ms"`
	AdmittedPerSec   *float64    `json:"admitted_per_sec"`
	Rejections       []Rejection `json:"rejections"`
}

// Rejection is one (priority, reason) pair with rejections so far.
type Rejection struct {
	Priority string   `json:"priority"`
	Reason   string   `json:"reason"`
	Total    float64  `json:"total"`
	PerSec   *float64 `json:"per_sec"`
}

// Ledger is the commit pipeline's state.
type Ledger struct {
	QueueDepth       *float64 `json:"queue_depth"`
	BatchSizeMean    *float64 `json:"batch_size_mean"`
	BatchesPerSec    *float64 `json:"batches_per_sec"`
	TransactionsPerS *float64 `json:"transactions_per_sec"`
	CommitP99Ms      *float64 `json:"commit_p99_ms"`
	CommitMeanMs     *float64 `json:"commit_mean_ms"`
	FailuresTotal    *float64 `json:"failures_total"`
	OverloadTotal    *float64 `json:"overload_total"`
}

// Control is the settings version this process applies.
type Control struct {
	AppliedVersion   *float64 `json:"applied_version"`
	StoreUp          *float64 `json:"store_up"`
	StalenessSeconds *float64 `json:"staleness_seconds"`
}

// CDC is the change-stream relay of this process.
type CDC struct {
	Running       bool     `json:"running"` // the relay's metrics exist in this process
	State         string   `json:"state"`   // not running here, restarting, streaming, idle
	WALBytes      *float64 `json:"wal_bytes_behind"`
	Seconds       *float64 `json:"seconds_behind"`
	EventsPerSec  *float64 `json:"events_per_sec"`
	RestartsTotal *float64 `json:"restarts_total"`
}

// Tasks is the background-task table.
type Tasks struct {
	// Reported is true when a task-lag metric exists in this process (the
	// features engine exports them); rows then have lag figures.
	Reported  bool      `json:"reported"`
	Rows      []TaskRow `json:"rows"`
	Truncated bool      `json:"truncated"`
}

// TaskRow is one tenant × task × partition. Without lag metrics it is one
// row per tenant × task with partition "all" and the live rate setting.
type TaskRow struct {
	Tenant     string   `json:"tenant"`
	Task       string   `json:"task"`
	Partition  string   `json:"partition"`
	Rate       float64  `json:"rate_per_partition"` // live tasks.<task>.rate_per_partition
	Paused     bool     `json:"paused"`             // rate 0
	LagEvents  *float64 `json:"lag_events"`
	LagSeconds *float64 `json:"lag_seconds"`
	ETASeconds *float64 `json:"eta_seconds"` // null: paused, no lag figure, or not draining
	// DrainPerSec is how fast the lag fell over the window (negative: it
	// grew); null before a second gather.
	DrainPerSec *float64 `json:"drain_per_sec"`
}

// Exports lists every bulwark_export* series of the registry.
type Exports struct {
	Reported  bool           `json:"reported"`
	Series    []ExportSeries `json:"series"`
	Truncated bool           `json:"truncated"`
}

// ExportSeries is one series: name, labels as k=v pairs, value (a
// histogram's count).
type ExportSeries struct {
	Name   string  `json:"name"`
	Labels string  `json:"labels"`
	Value  float64 `json:"value"`
}

// Limits of the summary, so a registry with many tenants or series keeps
// the answer small (the page polls it every second).
const (
	// MaxTaskRows bounds the task table: 50 tenants × 4 tasks × 2
	// partitions, or fewer tenants with more partitions.
	MaxTaskRows = 400
	// MaxTenants bounds the tenants listed for rates without lag metrics.
	MaxTenants = 50
	// MaxExportSeries bounds the exports table.
	MaxExportSeries = 200
	// tenantsTTL: the tenant list is read from the database at most this
	// often.
	tenantsTTL = 10 * time.Second
)

// Metric names read by the summary (defined by edge, admission, ledger,
// control, the cdc relay, and later the features and exports engines).
const (
	mHTTPRequests   = "bulwark_http_requests_total"
	mHTTPSeconds    = "bulwark_http_request_seconds"
	mHTTPInFlight   = "bulwark_http_in_flight"
	mAdmStage       = "bulwark_admission_stage"
	mAdmCapacity    = "bulwark_admission_capacity_estimate"
	mAdmInflight    = "bulwark_admission_inflight"
	mAdmThreshold   = "bulwark_admission_shed_threshold"
	mAdmQueueDelay  = "bulwark_admission_queue_delay_seconds"
	mAdmAdmitted    = "bulwark_admission_admitted_total"
	mAdmRejected    = "bulwark_admission_rejected_total"
	mLedgerQueued   = "bulwark_ledger_pipeline_queued_transactions"
	mLedgerBatchTx  = "bulwark_ledger_batch_transactions"
	mLedgerBatchSec = "bulwark_ledger_batch_seconds"
	mLedgerBatches  = "bulwark_ledger_batches_total"
	mLedgerTx       = "bulwark_ledger_batch_transactions_total"
	mLedgerFailures = "bulwark_ledger_batch_failures_total"
	mLedgerOverload = "bulwark_ledger_pipeline_overload_total"
	mCtlVersion     = "bulwark_control_applied_version"
	mCtlUp          = "bulwark_control_store_up"
	mCtlStaleness   = "bulwark_control_staleness_seconds"
	mCDCWALBytes    = "bulwark_cdc_wal_bytes_behind"
	mCDCSeconds     = "bulwark_cdc_seconds_behind"
	mCDCEvents      = "bulwark_cdc_events_produced_total"
	mCDCHeartbeats  = "bulwark_cdc_heartbeats_total"
	mCDCRestarts    = "bulwark_cdc_session_restarts_total"
	mTaskLagEvents  = "bulwark_features_task_lag_events"
	mTaskLagSeconds = "bulwark_features_task_lag_seconds"
	exportPrefix    = "bulwark_export"
)

// summary builds the Summary from the newest gather.
func (c *Console) summary(ctx context.Context) (Summary, error) {
	cur, base, err := c.sampler.pair()
	if err != nil {
		return Summary{}, err
	}
	s := Summary{At: cur.at, Tenants: c.tenantList(ctx)}
	if base != nil {
		s.WindowSeconds = cur.at.Sub(base.at).Seconds()
	}
	s.HTTP = c.httpStats(cur, base)
	s.Admission = admissionStats(cur, base)
	s.Ledger = ledgerStats(cur, base)
	s.Control = Control{AppliedVersion: cur.fams.gauge(mCtlVersion), StoreUp: cur.fams.gauge(mCtlUp),
		StalenessSeconds: cur.fams.gauge(mCtlStaleness)}
	s.CDC = cdcStats(cur, base)
	s.Tasks = c.taskStats(cur, base, s.Tenants)
	s.Exports = exportStats(cur)
	if s.Admission.Stage == nil {
		s.Gaps = append(s.Gaps, "admission (this process does not run the api role)")
	}
	if s.Ledger.QueueDepth == nil {
		s.Gaps = append(s.Gaps, "ledger pipeline")
	}
	if !s.CDC.Running {
		s.Gaps = append(s.Gaps, "change stream relay (role cdc)")
	}
	return s, nil
}

// httpStats groups request rates and latencies by route class.
func (c *Console) httpStats(cur sample, base *sample) HTTPStats {
	out := HTTPStats{InFlight: cur.fams.gauge(mHTTPInFlight), Classes: []ClassRow{}}
	seen := map[string]bool{}
	if mf, ok := cur.fams[mHTTPRequests]; ok {
		for _, m := range mf.GetMetric() {
			seen[c.routeClass(labels(m)["route"])] = true
		}
	}
	classes := make([]string, 0, len(seen))
	for cl := range seen {
		classes = append(classes, cl)
	}
	sort.Strings(classes)
	for _, cl := range classes {
		inClass := func(l map[string]string) bool { return c.routeClass(l["route"]) == cl }
		status := func(ok func(int) bool) match {
			return func(l map[string]string) bool {
				code, _ := strconv.Atoi(l["status"])
				return inClass(l) && ok(code)
			}
		}
		out.Classes = append(out.Classes, ClassRow{
			Class:     cl,
			PerSec:    rate(cur, base, mHTTPRequests, inClass),
			ShedPerS:  rate(cur, base, mHTTPRequests, status(func(s int) bool { return s == 429 || s == 503 })),
			ErrorPerS: rate(cur, base, mHTTPRequests, status(func(s int) bool { return s >= 500 && s != 503 })),
			P99Ms:     quantileOf(windowHist(cur, base, mHTTPSeconds, inClass), 0.99, 1000),
		})
	}
	return out
}

func (c *Console) routeClass(pattern string) string {
	if c.cfg.RouteClass == nil {
		return pattern
	}
	return c.cfg.RouteClass(pattern)
}

func admissionStats(cur sample, base *sample) Admission {
	a := Admission{
		Stage: cur.fams.gauge(mAdmStage), CapacityEstimate: cur.fams.gauge(mAdmCapacity),
		InFlight: cur.fams.gauge(mAdmInflight), ShedThreshold: cur.fams.gauge(mAdmThreshold),
		AdmittedPerSec: rate(cur, base, mAdmAdmitted, nil), Rejections: []Rejection{},
	}
	if d := cur.fams.gauge(mAdmQueueDelay); d != nil {
		ms := *d * 1000
		a.QueueDelayMs = &ms
	}
	if mf, ok := cur.fams[mAdmRejected]; ok {
		for _, m := range mf.GetMetric() {
			if value(m) == 0 {
				continue
			}
			l := labels(m)
			a.Rejections = append(a.Rejections, Rejection{Priority: l["priority"], Reason: l["reason"], Total: value(m),
				PerSec: rate(cur, base, mAdmRejected, func(o map[string]string) bool {
					return o["priority"] == l["priority"] && o["reason"] == l["reason"]
				})})
		}
	}
	return a
}

func ledgerStats(cur sample, base *sample) Ledger {
	return Ledger{
		QueueDepth:       cur.fams.gauge(mLedgerQueued),
		BatchSizeMean:    meanOf(windowHist(cur, base, mLedgerBatchTx, nil), 1),
		BatchesPerSec:    rate(cur, base, mLedgerBatches, nil),
		TransactionsPerS: rate(cur, base, mLedgerTx, nil),
		CommitP99Ms:      quantileOf(windowHist(cur, base, mLedgerBatchSec, nil), 0.99, 1000),
		CommitMeanMs:     meanOf(windowHist(cur, base, mLedgerBatchSec, nil), 1000),
		FailuresTotal:    cur.fams.gauge(mLedgerFailures),
		OverloadTotal:    cur.fams.gauge(mLedgerOverload),
	}
}

// cdcStats reports the relay. Its state is derived from its counters over
// the window: restarting (a session restarted), streaming (events or
// heartbeats were produced), idle (neither).
func cdcStats(cur sample, base *sample) CDC {
	out := CDC{WALBytes: cur.fams.gauge(mCDCWALBytes), Seconds: cur.fams.gauge(mCDCSeconds),
		EventsPerSec: rate(cur, base, mCDCEvents, nil), RestartsTotal: cur.fams.gauge(mCDCRestarts)}
	out.Running = out.WALBytes != nil
	switch {
	case !out.Running:
		out.State = "not running in this process"
	case base == nil:
		out.State = "measuring"
	case positive(rate(cur, base, mCDCRestarts, nil)):
		out.State = "restarting"
	case positive(out.EventsPerSec) || positive(rate(cur, base, mCDCHeartbeats, nil)):
		out.State = "streaming"
	default:
		out.State = "idle"
	}
	return out
}

func positive(v *float64) bool { return v != nil && *v > 0 }

// taskNames are the background tasks with a tasks.<task>.rate_per_partition
// setting in the registry, sorted.
func (c *Console) taskNames() []string {
	var out []string
	for _, k := range c.cfg.Registry.Keys() {
		if t, ok := strings.CutPrefix(k.Name, "tasks."); ok {
			if name, ok := strings.CutSuffix(t, ".rate_per_partition"); ok {
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// taskStats builds the task table from the bulwark_features_task_lag_*
// series (labels task, tenant, partition) and the live rate settings;
// without lag series, from the tenants × tasks settings alone.
func (c *Console) taskStats(cur sample, base *sample, tenants []string) Tasks {
	snap := c.cfg.Snapshot()
	rateOf := func(tn, task string) float64 {
		if v, ok := snap.Value(tn, control.TaskRateKey(task)); ok {
			return v.Float()
		}
		return 0
	}
	out := Tasks{Rows: []TaskRow{}}
	add := func(r TaskRow) bool {
		if len(out.Rows) >= MaxTaskRows {
			out.Truncated = true
			return false
		}
		r.Rate = rateOf(r.Tenant, r.Task)
		r.Paused = r.Rate == 0
		out.Rows = append(out.Rows, r)
		return true
	}
	if mf, ok := cur.fams[mTaskLagEvents]; ok {
		out.Reported = true
		secs := map[string]float64{}
		if sf, ok := cur.fams[mTaskLagSeconds]; ok {
			for _, m := range sf.GetMetric() {
				secs[seriesKey(m)] = value(m)
			}
		}
		prev := map[string]float64{}
		if base != nil {
			if bf, ok := base.fams[mTaskLagEvents]; ok {
				for _, m := range bf.GetMetric() {
					prev[seriesKey(m)] = value(m)
				}
			}
		}
		metrics := mf.GetMetric()
		sort.Slice(metrics, func(i, j int) bool { return seriesKey(metrics[i]) < seriesKey(metrics[j]) })
		for _, m := range metrics {
			l, key := labels(m), seriesKey(m)
			row := TaskRow{Tenant: l["tenant"], Task: l["task"], Partition: l["partition"]}
			lag := value(m)
			row.LagEvents = &lag
			if s, ok := secs[key]; ok {
				row.LagSeconds = &s
			}
			if p, ok := prev[key]; ok && base != nil {
				drain := (p - lag) / cur.at.Sub(base.at).Seconds()
				row.DrainPerSec = &drain
			}
			if !add(row) {
				break
			}
		}
		for i := range out.Rows {
			out.Rows[i].ETASeconds = eta(out.Rows[i])
		}
		return out
	}
	for _, tn := range tenants {
		for _, task := range c.taskNames() {
			if !add(TaskRow{Tenant: tn, Task: task, Partition: "all"}) {
				return out
			}
		}
	}
	return out
}

// eta is the time to drain a row's lag: at the observed drain rate over
// the window; before a second gather, at the configured rate per partition
// (the most the limiter lets through). Null when paused, without a lag
// figure, or when the lag did not fall over the window (not draining).
func eta(r TaskRow) *float64 {
	if r.LagEvents == nil || r.Paused {
		return nil
	}
	if *r.LagEvents == 0 {
		z := 0.0
		return &z
	}
	speed := r.Rate
	if r.DrainPerSec != nil {
		speed = *r.DrainPerSec
	}
	if speed <= 0 {
		return nil
	}
	v := *r.LagEvents / speed
	return &v
}

// exportStats lists the bulwark_export* series, if the exports engine runs
// in this process.
func exportStats(cur sample) Exports {
	out := Exports{Series: []ExportSeries{}}
	names := make([]string, 0)
	for name := range cur.fams {
		if strings.HasPrefix(name, exportPrefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		out.Reported = true
		for _, m := range cur.fams[name].GetMetric() {
			if len(out.Series) >= MaxExportSeries {
				out.Truncated = true
				return out
			}
			out.Series = append(out.Series, ExportSeries{Name: name,
				Labels: strings.TrimSuffix(seriesKey(m), ","), Value: value(m)})
		}
	}
	return out
}

// tenantList returns up to MaxTenants tenant ids, read at most every
// tenantsTTL; on a read error the last list is kept.
func (c *Console) tenantList(ctx context.Context) []string {
	if c.cfg.Tenants == nil {
		return []string{}
	}
	c.tmu.Lock()
	defer c.tmu.Unlock()
	if now := c.cfg.Now(); now.Sub(c.tenantsAt) >= tenantsTTL || c.tenants == nil {
		ids, err := c.cfg.Tenants(ctx, MaxTenants)
		if err != nil {
			c.cfg.Log.Warn("console: list tenants; keeping the last list", "err", err)
			if c.tenants == nil {
				return []string{}
			}
			return c.tenants
		}
		c.tenants, c.tenantsAt = append([]string{}, ids...), now
	}
	return c.tenants
}

// forgetTenants makes the next summary read the tenant list again (after
// the operator acts on a tenant the console has not listed yet).
func (c *Console) forgetTenants() {
	c.tmu.Lock()
	c.tenantsAt = time.Time{}
	c.tmu.Unlock()
}
