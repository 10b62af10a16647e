package control_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
