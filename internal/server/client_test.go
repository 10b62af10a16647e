package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/server"
	"github.com/bulwark-ledger/bulwark/internal/server/servertest"
)

const adminKey = "bwa_test_admin_key"

// client is a small HTTP client for tests.
type client struct {
	base string
	key  string
	http *http.Client
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (c *client) do(t testing.TB, method, path string, body any, hdr ...string) response {
	t.Helper()
	r, err := c.try(method, path, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (c *client) try(method, path string, body any, hdr ...string) (response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		enc, _ := json.Marshal(b)
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return response{}, err
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	out := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &out.body)
	return out, nil
}

// startServer runs an in-process server (api and workers roles) on a
// fresh database.
func startServer(t *testing.T) (*client, string) {
	t.Helper()
	return startServerRoles(t, server.RoleAPI, server.RoleWorkers)
}

func startServerRoles(t *testing.T, roles ...string) (*client, string) {
	t.Helper()
	return startServerIn(t, t.TempDir(), roles...)
}

func startServerIn(t *testing.T, dataDir string, roles ...string) (*client, string) {
	t.Helper()
	return startServerWith(t, dataDir, nil, roles...)
}

// startServerWith is startServerIn with a hook that adjusts the config.
func startServerWith(t *testing.T, dataDir string, adjust func(*server.Config), roles ...string) (*client, string) {
	t.Helper()
	url := pgtest.NewDB(t)
	cfg := server.Config{PostgresURL: url, AdminKey: adminKey, Roles: roles, DataDir: dataDir, Logger: quietLogger()}
	if adjust != nil {
		adjust(&cfg)
	}
	base := servertest.Start(t, cfg)
	return &client{base: base, key: adminKey, http: &http.Client{Timeout: 30 * time.Second}}, url
}

// newTenant creates a tenant and returns a client with its key.
func newTenant(t *testing.T, admin *client, id string) *client {
	t.Helper()
	if r := admin.do(t, "POST", "/v1/admin/tenants", map[string]string{"id": id}); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.raw)
	}
	r := admin.do(t, "POST", "/v1/admin/tenants/"+id+"/api-keys", nil)
	if r.status != 201 {
		t.Fatalf("create key: %d %s", r.status, r.raw)
	}
	return &client{base: admin.base, key: r.body["key"].(string), http: admin.http}
}
