package promql

import (
	"errors"
	"slices"
	"testing"
)

func TestMetricNames(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`rate(bulwark_http_requests_total{route=~"POST /v1/transactions.*", status!~"5.."}[5m])`, []string{"bulwark_http_requests_total"}},
		{`histogram_quantile(0.99, sum by (le, route) (rate(bulwark_http_request_seconds_bucket[$__rate_interval])))`,
			[]string{"bulwark_http_request_seconds_bucket"}},
		{`sum without (instance) (a) / on (job) group_left (route) b`, []string{"a", "b"}},
		{`sum(rate(x[5m])) by (route) > bool 0.5`, []string{"x"}},
		{`count by(op)(y) unless z offset 1h`, []string{"y", "z"}},
		{`max_over_time(q[1h:5m]) and q @ end()`, []string{"q"}},
		{`{__name__="named", job="x"}`, []string{"named"}},
		{`{"quoted", job="x"}`, []string{"quoted"}},
		{`label_replace(a, "class", "payments", "route", "POST /v1/transactions.*")`, []string{"a"}},
		{`bulwark:payments_errors:ratio_rate5m > (14.4 * 0.001)`, []string{"bulwark:payments_errors:ratio_rate5m"}},
		{`a{instance=~"$instance"} - ${b_var} + [[c]] * 1e-3 + 0x1f`, []string{"a"}},
		{`topk(5, sum by (tenant) (c)) or vector(0)`, []string{"c"}},
		{"# comment\nabsent(m)", []string{"m"}},
		{`sum by (x) (a) + sum by (x) (a)`, []string{"a"}},
		{`Inf + NaN`, nil},
	}
	for _, c := range cases {
		got, err := MetricNames(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.expr, got, c.want)
		}
	}
}

func TestMetricNamesRefuses(t *testing.T) {
	for _, expr := range []string{
		`rate(x[5m]`, `x)`, `x{a="b"`, `x{a=b}`, `x{a}`, `"open`, `{__name__=~"bulwark_.*"}`,
		`x[5m`, `$`, `${x`, `x ; y`, `sum by (a b) (x)`,
	} {
		if _, err := MetricNames(expr); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: err %v, want ErrSyntax", expr, err)
		}
	}
}

func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{
		`histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[5m])))`,
		`{__name__="n"} offset 5m`, `a / on(b) group_left c`, `${v} [[w]] $x`, `'s\'q'`, "`raw`",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := MetricNames(expr)
		if err != nil {
			return
		}
		for _, n := range names {
			if n == "" {
				t.Fatalf("%q: empty name", expr)
			}
		}
	})
}
