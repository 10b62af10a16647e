package featurebench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds of the server and its clients.
const (
	// readyTimeout bounds the server's start (migrations on an empty
	// database, the embedded broker's topics).
	readyTimeout = 2 * time.Minute
	// stopTimeout bounds the graceful stop before SIGKILL.
	stopTimeout = 30 * time.Second
	// requestTimeout bounds one HTTP request of the benchmark.
	requestTimeout = 10 * time.Second
	// callRetry bounds the retries of a set-up call that admission sheds.
	callRetry = 30 * time.Second
	// maxBody bounds a response body read.
	maxBody = 4 << 20
	// maxConns bounds the client's connections to the server: above the
	// in-flight bound of the open-model generators together.
	maxConns = 4 * maxInflight
)

// child is the `bulwark serve` process under test.
type child struct {
	cmd      *exec.Cmd
	base     string // http://127.0.0.1:port
	adminKey string
	key      string // the bench tenant's key
	hc       *http.Client
	exited   chan error
	debug    string // http://127.0.0.1:port of the profiles, when Config.ServerProfile is set
}

// startChild runs `bulwark serve --roles api,features` on the database and
// the broker, and waits until /readyz answers 200.
func startChild(ctx context.Context, cfg *Config, brokers []string) (*child, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c := &child{base: "http://" + addr, adminKey: randomKey(), exited: make(chan error, 1),
		hc: &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
			MaxIdleConns: maxConns, MaxIdleConnsPerHost: maxConns, MaxConnsPerHost: maxConns, IdleConnTimeout: time.Minute,
		}}}
	args := append([]string(nil), cfg.Serve[1:]...)
	args = append(args, "--addr", addr, "--postgres", cfg.PostgresURL, "--kafka", strings.Join(brokers, ","),
		"--roles", "api,features", "--data-dir", filepath.Join(cfg.Dir, "serve"), "--log-level", "warn")
	if cfg.ServerProfile != "" {
		daddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		c.debug = "http://" + daddr
		args = append(args, "--debug-addr", daddr)
	}
	c.cmd = exec.Command(cfg.Serve[0], args...)
	c.cmd.Env = append(append(os.Environ(), cfg.ServeEnv...), "BULWARK_ADMIN_KEY="+c.adminKey)
	c.cmd.Stdout, c.cmd.Stderr = cfg.ServerLog, cfg.ServerLog
	if c.cmd.Stderr == nil {
		c.cmd.Stdout, c.cmd.Stderr = io.Discard, io.Discard
	}
	// The server dies with the benchmark (a crash): no orphan holds the
	// database. Its own process group: a ^C reaches the benchmark, which
	// stops the server in order.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: Pdeathsig fires when the thread that started the
		// child exits, so that thread lives as long as this goroutine.
		runtime.LockOSThread()
		if err := c.cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", cfg.Serve[0], err)
			return
		}
		started <- nil
		c.exited <- c.cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		st, _, err := c.do(ctx, http.MethodGet, "/readyz", "", nil)
		if err == nil && st == http.StatusOK {
			return c, nil
		}
		select {
		case err := <-c.exited:
			c.exited <- err
			return nil, fmt.Errorf("server exited before it was ready: %w", err)
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), c.stop())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, errors.Join(fmt.Errorf("server not ready after %v", readyTimeout), c.stop())
		}
	}
}

// profile writes a CPU profile of the server over d to path.
func (c *child) profile(ctx context.Context, d time.Duration, path string) error {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", c.debug, max(1, int(d.Seconds()))), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server profile: HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// stop sends SIGTERM and waits for the exit, SIGKILL after stopTimeout.
func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		c.exited <- err
		return nil
	case <-time.After(stopTimeout):
		_ = c.cmd.Process.Kill()
		return fmt.Errorf("server did not stop within %v; killed: %w", stopTimeout, <-c.exited)
	}
}

// do sends one request (in JSON unless it is nil or []byte) with key as
// the bearer and returns the status and body.
func (c *child) do(ctx context.Context, method, path, key string, in any) (int, []byte, error) {
	var rd io.Reader
	switch b := in.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return resp.StatusCode, body, err
}

// call is do that wants a 2xx answer and decodes it into out (if not
// nil). Set-up calls are retried while admission sheds load (503, 429):
// the server may still be recovering from the previous phase.
func (c *child) call(ctx context.Context, method, path, key string, in, out any) error {
	var st int
	var body []byte
	var err error
	for deadline := time.Now().Add(callRetry); ; {
		st, body, err = c.do(ctx, method, path, key, in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		if (st != http.StatusServiceUnavailable && st != http.StatusTooManyRequests) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if st/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %.300s", method, path, st, body)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

// setup creates the bench tenant and its key, and lifts its request quota
// (the benchmark measures the engine, not the quota).
func (c *child) setup(ctx context.Context) error {
	if err := c.call(ctx, http.MethodPost, "/v1/admin/tenants", c.adminKey, map[string]string{"id": benchTenant}, nil); err != nil {
		return err
	}
	var key struct{ Key string }
	if err := c.call(ctx, http.MethodPost, "/v1/admin/tenants/"+benchTenant+"/api-keys", c.adminKey, struct{}{}, &key); err != nil {
		return err
	}
	c.key = key.Key
	return c.settings(ctx, map[string]string{"quota.requests_per_sec": "1000000", "quota.burst": "1000000"})
}

// settings changes live settings of the bench tenant through the control API.
func (c *child) settings(ctx context.Context, set map[string]string) error {
	return c.call(ctx, http.MethodPatch, "/v1/admin/settings/tenants/"+benchTenant, c.adminKey,
		map[string]any{"set": set, "reason": "bench features"}, nil)
}

// serverStats are figures of the server's /metrics.
type serverStats struct {
	rss, heap, cpu float64 // process_resident_memory_bytes, go_memstats_heap_inuse_bytes, process_cpu_seconds_total
	// The live path's transactions: count, seconds, records.
	batches, batchSecs, batchRecords float64
	// Tile rows the live path wrote, by path (tileWritePaths).
	tileWrites [len(tileWritePaths)]float64
}

// tileWritePaths are the path labels of bulwark_features_tile_writes_total.
var tileWritePaths = [...]string{"cached", "inserted", "stale", "locked"}

// scrape reads the server's RSS, Go heap, CPU and batch figures from /metrics.
func (c *child) scrape(ctx context.Context) (serverStats, error) {
	var m serverStats
	st, body, err := c.do(ctx, http.MethodGet, "/metrics", "", nil)
	if err != nil {
		return m, fmt.Errorf("scrape /metrics: %w", err)
	}
	if st != http.StatusOK {
		return m, fmt.Errorf("scrape /metrics: HTTP %d", st)
	}
	fields := map[string]*float64{"process_resident_memory_bytes": &m.rss, "go_memstats_heap_inuse_bytes": &m.heap,
		"process_cpu_seconds_total": &m.cpu, "bulwark_features_commit_seconds_count": &m.batches,
		"bulwark_features_commit_seconds_sum": &m.batchSecs, "bulwark_features_batch_records_sum": &m.batchRecords}
	for i, p := range tileWritePaths {
		fields[`bulwark_features_tile_writes_total{path="`+p+`"}`] = &m.tileWrites[i]
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if p := fields[name]; ok && p != nil {
			if *p, err = strconv.ParseFloat(value, 64); err != nil {
				return m, fmt.Errorf("metric %s: %w", name, err)
			}
		}
	}
	if m.rss == 0 {
		return m, errors.New("/metrics has no process_resident_memory_bytes")
	}
	return m, sc.Err()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomKey() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+)
	return "bwa_bench_" + hex.EncodeToString(b[:])
}
