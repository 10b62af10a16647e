package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/cli"
	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

const adminKey = "test-admin-key"

// newServer serves the control API behind real authentication.
func newServer(t *testing.T) (*httptest.Server, *control.Store) {
	t.Helper()
	s, pool := newStore(t)
	mux := http.NewServeMux()
	control.NewAPI(s, nil).Register(mux)
	srv := httptest.NewServer(tenant.NewStore(pool, adminKey).Middleware(mux))
	t.Cleanup(srv.Close)
	return srv, s
}

func do(t *testing.T, srv *httptest.Server, key, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestAPIErrorsChangeNothing(t *testing.T) {
	srv, s := newServer(t)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown key", "PATCH", "/v1/admin/settings/tenants/acme",
			`{"set":{"tasks.recompute.rate_per_partition":0,"tasks.bogus.rate_per_partition":1}}`, 422, "unknown_setting"},
		{"wrong type", "PATCH", "/v1/admin/settings/tenants/acme",
			`{"set":{"tasks.recompute.rate_per_partition":0,"quota.burst":"many"}}`, 422, "invalid_setting_value"},
		{"out of range", "PATCH", "/v1/admin/settings/tenants/acme",
			`{"set":{"tasks.recompute.rate_per_partition":-5}}`, 422, "setting_out_of_range"},
		{"null", "PATCH", "/v1/admin/settings/tenants/acme", `{"set":{"quota.burst":null}}`, 422, "invalid_setting_value"},
		{"unknown tenant", "PATCH", "/v1/admin/settings/tenants/nobody", `{"set":{"quota.burst":1}}`, 404, "tenant_not_found"},
		{"unknown tenant get", "GET", "/v1/admin/settings/tenants/nobody", ``, 404, "tenant_not_found"},
		{"unknown preset", "POST", "/v1/admin/presets/panic/apply", `{"tenant":"acme"}`, 404, "preset_not_found"},
		{"preset unknown tenant", "POST", "/v1/admin/presets/surge/apply", `{"tenant":"nobody"}`, 404, "tenant_not_found"},
		{"revert not applied", "POST", "/v1/admin/presets/surge/revert", `{"tenant":"acme"}`, 409, "preset_not_applied"},
		{"empty", "PATCH", "/v1/admin/settings/tenants/acme", `{}`, 400, "invalid_request"},
		{"unknown field", "PATCH", "/v1/admin/settings/tenants/acme", `{"sett":{}}`, 400, "unknown_member"},
		{"bad limit", "GET", "/v1/admin/settings/history?limit=0", ``, 400, "invalid_request"},
	} {
		status, out := do(t, srv, adminKey, tc.method, tc.path, tc.body)
		if status != tc.status || out["code"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, out, tc.status, tc.code)
		}
	}
	if status, out := do(t, srv, "bwk_notakey", "GET", "/v1/admin/settings/keys", ""); status != 401 {
		t.Errorf("no admin key: %d %v", status, out)
	}
	if h, _ := s.History(context.Background(), control.HistoryFilter{}); len(h) != 0 {
		t.Errorf("failed requests left %d audit entries", len(h))
	}
	if ts, _ := s.Settings(context.Background(), "acme"); ts.Version != 0 {
		t.Errorf("version moved to %d", ts.Version)
	}
}

// TestCLI runs the bulwark control commands against the API.
func TestCLI(t *testing.T) {
	srv, s := newServer(t)
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		root := cli.Root()
		root.SetOut(&out)
		root.SetArgs(append(args, "--server", srv.URL, "--key", adminKey))
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	out := run("control", "set", "--tenant", "acme", "tasks.recompute.rate_per_partition=0", "quota.burst=7",
		"--reason", "surge", "--operator", "alice")
	if !strings.Contains(out, "version 1") {
		t.Errorf("set printed %q", out)
	}
	out = run("control", "get", "--tenant", "acme", "tasks.recompute.rate_per_partition")
	if !strings.Contains(out, "tasks.recompute.rate_per_partition  0      tenant") {
		t.Errorf("get printed %q", out)
	}
	run("control", "unset", "--tenant", "acme", "quota.burst")
	run("control", "preset", "apply", "surge", "--tenant", "acme", "--reason", "incident 42")
	run("control", "preset", "revert", "surge", "--tenant", "acme")
	out = run("control", "history", "--tenant", "acme", "--setting", "tasks.agg_backfill.rate_per_partition")
	for _, want := range []string{"surge (revert)", "admin", "incident 42"} {
		if !strings.Contains(out, want) {
			t.Errorf("history lacks %q:\n%s", want, out)
		}
	}
	if out := run("control", "keys"); !strings.Contains(out, "tasks.export_huge.rate_per_partition") {
		t.Errorf("keys printed %q", out)
	}
	if out := run("control", "preset", "list"); !strings.Contains(out, "surge:") {
		t.Errorf("preset list printed %q", out)
	}
	ts, _ := s.Settings(context.Background(), "acme")
	for _, st := range ts.Settings {
		if st.Key == recompute && (st.Value != "0" || st.Source != "tenant") {
			t.Errorf("after revert recompute = %+v, want 0 from tenant", st)
		}
	}
	root := cli.Root()
	root.SetOut(&bytes.Buffer{})
	root.SetArgs([]string{"control", "set", "--tenant", "acme", "quota.burst=lots", "--server", srv.URL, "--key", adminKey})
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_setting_value") {
		t.Errorf("bad value error = %v", err)
	}
}
