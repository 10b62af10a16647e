package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulwark-ledger/bulwark/internal/cdc/relay"
	"github.com/bulwark-ledger/bulwark/internal/export"
	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/promql"
	"github.com/bulwark-ledger/bulwark/internal/server"
	"github.com/bulwark-ledger/bulwark/internal/server/servertest"
)

// The dashboards and rules under deploy/ may refer only to metrics that a
// server really exports, or to series the recording rules produce. The
// test runs a server with every role (api, workers, cdc on the embedded
// broker, features, exports), sends traffic, events, a backfill and an
// export so that the counters, gauges and histograms with labels appear, scrapes /metrics, and checks every PromQL expression
// of every dashboard panel, template variable and rule.

const adminKey = "bwa_deploy_test_admin_key"

// exprRef is one expression and where it was found.
type exprRef struct {
	where string
	expr  string
}

func TestDashboardsAndRulesUseExportedMetrics(t *testing.T) {
	exported := scrapeServer(t)
	rules := ruleExprs(t)
	recorded := map[string]bool{}
	for _, r := range rules {
		if r.record != "" {
			recorded[r.record] = true
		}
	}
	exprs := dashboardExprs(t)
	for _, r := range rules {
		exprs = append(exprs, exprRef{r.where, r.expr})
	}
	if len(exprs) < 40 {
		t.Fatalf("found only %d expressions in deploy/: the files were not read", len(exprs))
	}
	// The route classes and the payments objective match route patterns:
	// the patterns they rely on must be what the server records, also for
	// a request refused before it reached its handler (here by auth; a
	// request shed by admission is refused at the same point).
	for _, series := range []string{
		`bulwark_http_requests_total{method="POST",route="POST /v1/transactions",status="201"}`,
		`bulwark_http_requests_total{method="POST",route="POST /v1/transactions",status="202"}`,
		`bulwark_http_requests_total{method="POST",route="POST /v1/transactions",status="401"}`,
		`bulwark_http_requests_total{method="GET",route="GET /v1/accounts/{id}",status="200"}`,
		`bulwark_http_requests_total{method="GET",route="GET /v1/admin/settings/keys",status="200"}`,
		`bulwark_http_requests_total{method="GET",route="GET /metrics",status="200"}`,
	} {
		if !exported[series] {
			t.Errorf("series %s not exported; the class and objective rules in prometheus/recording.yml rely on it", series)
		}
	}
	checked := map[string]bool{}
	for _, e := range exprs {
		names, err := promql.MetricNames(e.expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", e.where, err, e.expr)
			continue
		}
		if len(names) == 0 && !strings.HasPrefix(e.expr, "vector(") {
			t.Errorf("%s: no metric in %q", e.where, e.expr)
		}
		for _, n := range names {
			checked[n] = true
			if !exported[n] && !recorded[n] {
				t.Errorf("%s: metric %s is neither exported by the server nor recorded by a rule", e.where, n)
			}
		}
	}
	// Every recording rule's output is used by a dashboard or an alert.
	for r := range recorded {
		if !usedOutside(exprs, r) {
			t.Errorf("recording rule %s is used by nothing", r)
		}
	}
	t.Logf("%d expressions, %d distinct metrics checked against %d exported series names", len(exprs), len(checked), len(exported))
}

func usedOutside(exprs []exprRef, name string) bool {
	for _, e := range exprs {
		if names, err := promql.MetricNames(e.expr); err == nil && slices.Contains(names, name) {
			return true
		}
	}
	return false
}

// scrapeServer runs a server, sends traffic and returns the names of the
// series on /metrics (histograms as their _bucket, _sum and _count), and
// each series with its labels as written (name{a="x",b="y"}).
func scrapeServer(t *testing.T) map[string]bool {
	t.Helper()
	base := servertest.Start(t, server.Config{PostgresURL: pgtest.NewDB(t), AdminKey: adminKey,
		Roles:   []string{server.RoleAPI, server.RoleWorkers, server.RoleCDC, server.RoleFeat, server.RoleExports},
		DataDir: t.TempDir(),
		// Heartbeats refresh the change stream's lag gauges: often, so the
		// test sees them set.
		CDC: relay.Config{HeartbeatInterval: 200 * time.Millisecond},
		// One event per backfill chunk: a partition with history needs a
		// second token after its first chunk, so its lag series stays.
		Features: features.Config{ChunkEvents: 1, TaskPoll: 100 * time.Millisecond},
		Exports:  export.Config{Poll: 50 * time.Millisecond, SweepEvery: 200 * time.Millisecond},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	tk := traffic(t, base)
	backgroundWork(t, base, tk)
	// The relay commits the traffic's changes to Kafka; its per-result
	// and per-operation series appear then.
	// A change made before the relay's snapshot point is relayed as a
	// snapshot row, not as a streamed event: with five roles starting, the
	// traffic may come first, so a transfer every 2 s (at most 30) makes
	// sure the stream carries one.
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		if i%10 == 0 {
			servertest.Call(t, base, tk, "POST", "/v1/transactions",
				fmt.Sprintf(`{"idempotency_key":"late%d","postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, i), 201)
		}
		names := scrape(t, base)
		if names["bulwark_cdc_events_produced_total"] && names["bulwark_cdc_kafka_transaction_records_bucket"] &&
			names["bulwark_features_consumer_lag_records"] {
			return names
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change stream committed nothing in 60 s; exported: %v", keys(names))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// traffic creates a tenant, accounts and transfers (sync and async), and
// reads, so that every labelled HTTP, admission and ledger series exists;
// it returns the tenant's key.
func traffic(t *testing.T, base string) string {
	t.Helper()
	servertest.Call(t, base, adminKey, "POST", "/v1/admin/tenants", `{"id":"acme"}`, 201)
	tk := servertest.Call(t, base, adminKey, "POST", "/v1/admin/tenants/acme/api-keys", ``, 201)["key"].(string)
	servertest.Call(t, base, tk, "POST", "/v1/accounts", `{"id":"a","asset":"USD"}`, 201)
	servertest.Call(t, base, tk, "POST", "/v1/accounts", `{"id":"b","asset":"USD"}`, 201)
	for i := range 5 {
		servertest.Call(t, base, tk, "POST", "/v1/transactions",
			fmt.Sprintf(`{"idempotency_key":"k%d","postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, i), 201)
	}
	j := servertest.Call(t, base, tk, "POST", "/v1/transactions",
		`{"idempotency_key":"async1","postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, 202,
		"Prefer", "respond-async")
	servertest.Call(t, base, tk, "GET", "/v1/journal/"+j["id"].(string), ``, 200)
	servertest.Call(t, base, tk, "GET", "/v1/accounts/a", ``, 200)
	servertest.Call(t, base, "bwk_not_a_key", "POST", "/v1/transactions", `{}`, 401)
	servertest.Call(t, base, adminKey, "GET", "/v1/admin/settings/keys", ``, 200)
	return tk
}

// backgroundWork makes the features engine and the export workers export
// their labelled series: tenant events (one sent twice), a backfill left
// paused half way (task lag and the rate gauge at 0 stay while paused),
// and an export run to the end.
func backgroundWork(t *testing.T, base, tk string) {
	t.Helper()
	now := time.Now().UTC()
	var evs []string
	for i := range 20 {
		evs = append(evs, fmt.Sprintf(`{"id":"e%d","time":%q,"fields":{"card":"c%d"}}`, i, now.Add(-time.Duration(i)*time.Second).Format(time.RFC3339Nano), i%3))
	}
	servertest.Call(t, base, tk, "POST", "/v1/events", `{"events":[`+strings.Join(evs, ",")+`]}`, 202)
	servertest.Call(t, base, tk, "POST", "/v1/events", evs[0], 202)
	waitSeries(t, base, `bulwark_features_events_applied_total{source="events"}`)
	// One chunk every 5 s per partition: the first chunk of each partition
	// runs at once (a full bucket), its lag series then waits.
	setRate := func(v string) {
		servertest.Call(t, base, adminKey, "PATCH", "/v1/admin/settings/tenants/acme",
			`{"set":{"tasks.agg_backfill.rate_per_partition":"`+v+`"},"reason":"deploy test"}`, 200)
	}
	setRate("0.2")
	servertest.Call(t, base, tk, "POST", "/v1/features/definitions",
		`{"name":"card_count","source":"events","entity":"card","aggregation":"count","windows":["10m"]}`, 201)
	waitSeries(t, base, "bulwark_features_task_lag_events")
	setRate("0")
	waitSeries(t, base, `bulwark_features_task_rate_per_partition{task="agg_backfill",tenant="acme"}`)
	// A worker waiting for its next token when the pause came gives up
	// within 2 s: a refusal (canceled) with its task label.
	waitSeries(t, base, `bulwark_ratelimit_denied_total{reason="canceled",task="agg_backfill"}`)
	ex := servertest.Call(t, base, tk, "POST", "/v1/exports", `{"kind":"accounts"}`, 202)
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := servertest.Call(t, base, tk, "GET", "/v1/exports/"+ex["id"].(string), ``, 200)
		if st["state"] == "succeeded" {
			break
		}
		if time.Now().After(deadline) || st["state"] == "failed" {
			t.Fatalf("export: %v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitSeries(t, base, `bulwark_export_rows_total{queue="normal"}`)
}

// waitSeries waits up to 60 s for series (a name, or a name with its
// labels as written) on /metrics.
func waitSeries(t *testing.T, base, series string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !scrape(t, base)[series] {
		if time.Now().After(deadline) {
			t.Fatalf("no series %s on /metrics in 60 s", series)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scrape(t *testing.T, base string) map[string]bool {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
		// The series itself (name and labels), for label checks.
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			names[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// labelValuesRE reads Grafana's label_values(expr, label) variable
// queries.
var labelValuesRE = regexp.MustCompile(`^\s*label_values\(\s*(.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)

// dashboardExprs returns the expressions of every panel target and query
// variable of deploy/grafana/dashboards/*.json.
func dashboardExprs(t *testing.T) []exprRef {
	t.Helper()
	files, err := filepath.Glob("grafana/dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	var out []exprRef
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: no uid or title", f)
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] || p.ID == 0 || p.Type == "" || p.Title == "" {
				t.Errorf("%s: panel %q: id %d (unique, not 0), type %q: want all set", f, p.Title, p.ID, p.Type)
			}
			ids[p.ID] = true
			if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("%s: panel %q: gridPos %+v outside Grafana's 24 columns", f, p.Title, g)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s: panel %q: datasource %q, want the ${datasource} variable", f, p.Title, tg.Datasource.UID)
				}
				out = append(out, exprRef{fmt.Sprintf("%s: panel %q", f, p.Title), tg.Expr})
			}
		}
		hasDS := false
		for _, v := range d.Templating.List {
			if v.Type == "datasource" && v.Name == "datasource" {
				hasDS = true
			}
			if v.Type != "query" {
				continue
			}
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Errorf("%s: variable %s: %v", f, v.Name, err)
				continue
			}
			m := labelValuesRE.FindStringSubmatch(q.Query)
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(expr, label)", f, v.Name, q.Query)
				continue
			}
			out = append(out, exprRef{fmt.Sprintf("%s: variable %s", f, v.Name), m[1]})
		}
		if !hasDS {
			t.Errorf("%s: no datasource variable", f)
		}
	}
	return out
}

type dashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		GridPos struct {
			X, Y, W, H int
		} `json:"gridPos"`
		Title   string `json:"title"`
		Targets []struct {
			Expr       string `json:"expr"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
			// Query is a string for a datasource variable, an object for
			// a query variable.
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type ruleRef struct {
	where, record, expr string
}

// ruleExprs returns the rules of deploy/prometheus/*.yml (not the unit
// tests, *_test.yml).
func ruleExprs(t *testing.T) []ruleRef {
	t.Helper()
	files, err := filepath.Glob("prometheus/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	var out []ruleRef
	for _, f := range files {
		if strings.HasSuffix(f, "_test.yml") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []struct {
					Record string `yaml:"record"`
					Alert  string `yaml:"alert"`
					Expr   string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(raw, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				out = append(out, ruleRef{where: fmt.Sprintf("%s: group %s: %s%s", f, g.Name, r.Record, r.Alert), record: r.Record, expr: r.Expr})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no rules under prometheus/")
	}
	return out
}
