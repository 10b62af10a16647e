// Package servertest runs an in-process Bulwark server for tests of other
// packages: a real server.Run on a port the kernel picks, stopped and
// checked (a shutdown error fails the test) when the test ends.
package servertest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/server"
)

// StartTimeout bounds how long Start waits for the server to listen: a
// first start migrates a fresh database (and with the cdc role starts the
// embedded broker and the slot's snapshot), a few seconds on a loaded
// 2-core machine.
const StartTimeout = 90 * time.Second

// Start runs server.Run(cfg) until the test ends and returns its base URL
// ("http://127.0.0.1:port"). cfg.Addr empty means 127.0.0.1:0; cfg.Ready
// is Start's own.
func Start(t testing.TB, cfg server.Config) string {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	cfg.Ready = func(a string) { ready <- a }
	go func() { done <- server.Run(ctx, cfg) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("server: %v", err)
	case <-time.After(StartTimeout):
		cancel()
		t.Fatalf("server did not start in %v (after cancel: %v)", StartTimeout, <-done)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	})
	return "http://" + addr
}

// Call sends method path with body (JSON, or none when empty) as the
// bearer of key, with the extra headers hdr (name, value, …), fails the
// test unless the answer has status want, and returns the decoded JSON
// object answered (nil if it is not one).
func Call(t testing.TB, base, key, method, path, body string, want int, hdr ...string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}
