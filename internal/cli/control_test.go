package cli_test

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
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

const controlAdminKey = "test-admin-key"

// newControlServer serves the control API behind real authentication.
func newControlServer(t *testing.T) (*httptest.Server, *control.Store) {
	t.Helper()
	pool := pgtest.Pool(t)
	if _, err := pool.Exec(context.Background(), "INSERT INTO tenants (id) VALUES ('acme'), ('globex')"); err != nil {
		t.Fatal(err)
	}
	s := control.NewStore(pool, control.NewRegistry())
	mux := http.NewServeMux()
	control.NewAPI(s, nil).Register(mux)
	ts := tenant.NewStore(pool, controlAdminKey)
	ts.Register(mux)
	srv := httptest.NewServer(ts.Middleware(mux))
	t.Cleanup(srv.Close)
	return srv, s
}

// TestControlCommands runs the bulwark control commands against the API.
func TestControlCommands(t *testing.T) {
	srv, s := newControlServer(t)
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		root := cli.Root()
		root.SetOut(&out)
		root.SetArgs(append(args, "--server", srv.URL, "--key", controlAdminKey))
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
		if st.Key == "tasks.recompute.rate_per_partition" && (st.Value != "0" || st.Source != "tenant") {
			t.Errorf("after revert recompute = %+v, want 0 from tenant", st)
		}
	}
	root := cli.Root()
	root.SetOut(&bytes.Buffer{})
	root.SetArgs([]string{"control", "set", "--tenant", "acme", "quota.burst=lots", "--server", srv.URL, "--key", controlAdminKey})
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_setting_value") {
		t.Errorf("bad value error = %v", err)
	}
}

// TestTenantCommands creates a tenant and a key and revokes it through the
// CLI (which speaks through the client package); errors keep their codes.
func TestTenantCommands(t *testing.T) {
	srv, _ := newControlServer(t)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := cli.Root()
		root.SetOut(&out)
		root.SetArgs(append(args, "--server", srv.URL, "--key", controlAdminKey))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	out, err := run("tenant", "create", "initech", "--name", "Initech")
	if err != nil || !strings.Contains(out, `"id": "initech"`) {
		t.Fatalf("tenant create: %v\n%s", err, out)
	}
	if _, err := run("tenant", "create", "initech"); err == nil || !strings.Contains(err.Error(), "tenant_exists") {
		t.Fatalf("second create: want tenant_exists, got %v", err)
	}
	out, err = run("apikey", "create", "--tenant", "initech", "--traffic-types", "batch")
	if err != nil {
		t.Fatalf("apikey create: %v", err)
	}
	var key struct {
		ID           string   `json:"id"`
		Key          string   `json:"key"`
		TrafficTypes []string `json:"traffic_types"`
	}
	if err := json.Unmarshal([]byte(out), &key); err != nil || key.Key == "" || len(key.TrafficTypes) != 1 {
		t.Fatalf("apikey create printed %q (%v)", out, err)
	}
	if _, err := run("apikey", "revoke", key.ID, "--tenant", "initech"); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := run("apikey", "revoke", key.ID, "--tenant", "globex"); err == nil {
		t.Fatal("revoked another tenant's key id")
	}
}
