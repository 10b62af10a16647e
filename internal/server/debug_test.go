package server_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/server"
)

// TestDebugAddrServesProfiles: with DebugAddr set the process serves Go's
// profiles on that address, and not on the API's; without it nothing
// listens there.
func TestDebugAddrServesProfiles(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	debug := ln.Addr().String()
	ln.Close()
	api, _ := startServerWith(t, t.TempDir(), func(c *server.Config) { c.DebugAddr = debug }, server.RoleAPI)
	hc := &http.Client{Timeout: 30 * time.Second}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get("http://" + debug + "/debug/pprof/"); st != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("profile index on the debug address: %d %.200s", st, body)
	}
	if st, body := get("http://" + debug + "/debug/pprof/goroutine?debug=1"); st != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile: %d %.200s", st, body)
	}
	if st, _ := get(api.base + "/debug/pprof/"); st == http.StatusOK {
		t.Fatal("the API address serves profiles too")
	}
}
