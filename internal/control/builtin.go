package control

import "fmt"

// GlobalTenant is the scope whose overrides apply to every tenant that does
// not override the key itself: tenant override > global override > default.
const GlobalTenant = "*"

// Background task types whose rate per partition the control plane sets.
const (
	TaskRecompute      = "recompute"
	TaskAggBackfill    = "agg_backfill"
	TaskVelocityDetail = "velocity_detail"
	TaskExportHuge     = "export_huge"
)

// TaskRateKey returns the key holding the rate per partition of a task
// type: "tasks.<task>.rate_per_partition".
func TaskRateKey(task string) string { return "tasks." + task + ".rate_per_partition" }

// Keys of the built-in settings other than task rates.
const (
	KeyQuotaRPS          = "quota.requests_per_sec"
	KeyQuotaBurst        = "quota.burst"
	KeyQuotaBatchRPS     = "quota.batch.requests_per_sec"
	KeyQuotaBatchBurst   = "quota.batch.burst"
	KeyQuotaCrawlerRPS   = "quota.crawler.requests_per_sec"
	KeyQuotaCrawlerBurst = "quota.crawler.burst"
	KeyPriorityWeight    = "priority.weight"
	KeyAdmissionRules    = "admission.rules"

	// Velocity features (docs/features.md).
	KeyFeaturesMaxDefinitions      = "features.max_definitions"
	KeyFeaturesMaxEntities         = "features.max_entities"
	KeyFeaturesAllowedLateness     = "features.allowed_lateness_seconds"
	KeyFeaturesConsumerParallelism = "features.consumer_parallelism"
)

// Keys of the export settings (internal/export; docs/exports.md).
const (
	KeyExportHugeThreshold      = "exports.huge_threshold_rows"
	KeyExportMaxInFlight        = "exports.max_in_flight"
	KeyExportHugeMaxRunning     = "exports.huge.max_running"
	KeyExportHugeMaxRunningEach = "exports.huge.max_running_per_tenant"
	KeyExportRetentionHours     = "exports.retention_hours"
	KeyExportLinkTTLSeconds     = "exports.link_ttl_seconds"
)

// maxRate bounds every rate: 1,000,000/s is far past what one tenant can be
// granted and keeps token arithmetic well inside float64 precision.
const maxRate = 1_000_000

func builtinKeys() []Key {
	keys := []Key{
		{Name: KeyQuotaRPS, Type: Float, Default: "1000", Min: 0, Max: maxRate,
			Doc: "Sustained requests per second a tenant may send as normal traffic; beyond it the edge answers 429. 0 rejects all."},
		{Name: KeyQuotaBurst, Type: Int, Default: "2000", Min: 0, Max: maxRate,
			Doc: "Requests a tenant may send at once above quota.requests_per_sec (token bucket depth)."},
		{Name: KeyQuotaBatchRPS, Type: Float, Default: "200", Min: 0, Max: maxRate,
			Doc: "Sustained requests per second of traffic type batch. 0 rejects all batch traffic."},
		{Name: KeyQuotaBatchBurst, Type: Int, Default: "200", Min: 0, Max: maxRate,
			Doc: "Burst depth of the batch quota."},
		{Name: KeyQuotaCrawlerRPS, Type: Float, Default: "50", Min: 0, Max: maxRate,
			Doc: "Sustained requests per second of traffic type crawler. 0 rejects all crawler traffic."},
		{Name: KeyQuotaCrawlerBurst, Type: Int, Default: "50", Min: 0, Max: maxRate,
			Doc: "Burst depth of the crawler quota."},
		{Name: KeyPriorityWeight, Type: Int, Default: "50", Min: 0, Max: 100,
			Doc: "Weight of the tenant in the admission priority (0 lowest, 100 highest); combined with the route, source and traffic-type weights of the rule table."},
		{Name: KeyAdmissionRules, Type: Text, Default: "",
			Doc: "Classification rule table of admission control (text; empty = the built-in rules). Checked by the admission parser before it is stored."},
		{Name: KeyFeaturesMaxDefinitions, Type: Int, Default: "100", Min: 0, Max: 10_000,
			Doc: "Feature definitions a tenant may have (deleted ones do not count); a define beyond it is refused with too_many_features."},
		{Name: KeyFeaturesMaxEntities, Type: Int, Default: "1000000", Min: 0, Max: 1_000_000_000,
			Doc: "Entities (distinct values of the entity fields of its features) tracked per tenant; events of new entities beyond it are not aggregated and are counted in bulwark_features_entities_refused_total."},
		{Name: KeyFeaturesAllowedLateness, Type: Int, Default: "3600", Min: 0, Max: 7 * 86_400,
			Doc: "Seconds an event's time may lie before its acceptance and still be aggregated; older events are dropped and counted in bulwark_features_events_late_total."},
		{Name: KeyFeaturesConsumerParallelism, Type: Int, Default: "1", Min: 1, Max: 16,
			Doc: "Transactions each feature worker process applies at once (global scope only). Each takes the waiting records of every partition no other transaction holds; their tile writes take turns. 1 gives the best freshness; 2 about 20% more events per second under a backlog (one transaction prepares while the other writes); more only waits for the turn (docs/features.md)."},
	}
	keys = append(keys, exportKeys()...)
	for _, t := range []struct {
		task, def, doc string
	}{
		{TaskRecompute, "10", "feature recompute"},
		{TaskAggBackfill, "10", "aggregate backfill"},
		{TaskVelocityDetail, "100", "velocity detail"},
		{TaskExportHuge, "1", "huge export batch"},
	} {
		keys = append(keys, Key{Name: TaskRateKey(t.task), Type: Float, Default: t.def, Min: 0, Max: maxRate,
			Doc: fmt.Sprintf("Rate of %s tasks per partition, per second, per tenant. 0 pauses them (waiting workers resume when it rises).", t.doc)})
	}
	return keys
}

func exportKeys() []Key {
	return []Key{
		{Name: KeyExportHugeThreshold, Type: Int, Default: "500000", Min: 0, Max: 1e12,
			Doc: "Estimated rows above which an export goes to the huge queue (its own workers, caps and chunk rate). 0 sends every export there."},
		{Name: KeyExportMaxInFlight, Type: Int, Default: "10", Min: 0, Max: 10000,
			Doc: "Exports a tenant may have queued or running at once; beyond it POST /v1/exports answers 429. 0 refuses new exports."},
		{Name: KeyExportHugeMaxRunning, Type: Int, Default: "4", Min: 0, Max: 1000,
			Doc: "Huge exports running at once across all export workers (read from the global scope). 0 holds every huge export queued."},
		{Name: KeyExportHugeMaxRunningEach, Type: Int, Default: "2", Min: 0, Max: 1000,
			Doc: "Huge exports of one tenant running at once. 0 holds the tenant's huge exports queued."},
		{Name: KeyExportRetentionHours, Type: Float, Default: "24", Min: 0.001, Max: 24 * 366,
			Doc: "Hours a finished export's file is kept; then it is deleted and the export marked expired (read from the global scope)."},
		{Name: KeyExportLinkTTLSeconds, Type: Int, Default: "900", Min: 1, Max: 7 * 86400,
			Doc: "Seconds a signed download link stays valid after the status read that made it."},
	}
}

func builtinPresets() []Preset {
	return []Preset{{
		Name: "surge",
		Doc:  "Shed background work and crawlers during a traffic surge: recompute, backfill and huge exports paused, crawler quota cut to 5/s (burst 5). Revert restores the previous values exactly.",
		Values: []Assignment{
			{Key: TaskRateKey(TaskRecompute), Value: "0"},
			{Key: TaskRateKey(TaskAggBackfill), Value: "0"},
			{Key: TaskRateKey(TaskExportHuge), Value: "0"},
			{Key: KeyQuotaCrawlerRPS, Value: "5"},
			{Key: KeyQuotaCrawlerBurst, Value: "5"},
		},
	}}
}
