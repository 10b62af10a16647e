package ledgerbench

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
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/ledger/verify"
	"github.com/bulwark-ledger/bulwark/internal/pgserver"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

// benchTenant owns every account and transfer of a run.
const benchTenant = "bench"

// openServer returns the superuser URL of the PostgreSQL server to create
// databases on: cfgURL, or a private cluster in a temporary directory that
// stop stops and removes.
func openServer(ctx context.Context, cfgURL string) (adminURL string, stop func() error, err error) {
	if cfgURL != "" {
		return cfgURL, func() error { return nil }, nil
	}
	dir, err := pgserver.TempDir("bulwark-bench-")
	if err != nil {
		return "", nil, err
	}
	c, err := pgserver.Start(ctx, pgserver.Config{Dir: filepath.Join(dir, "data")})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start private postgres: %w", err)
	}
	return c.URL("postgres"), func() error {
		err := c.Stop()
		return errors.Join(err, os.RemoveAll(dir))
	}, nil
}

// target is one fresh database with a Bulwark server running on it.
type target struct {
	adminURL string // superuser URL of the PostgreSQL server
	name     string // the database
	pool     *pgxpool.Pool
	baseURL  string // http://127.0.0.1:port
	adminKey string
	cancel   context.CancelFunc
	done     chan error // receives server.Run's result; nil once received
}

// startTarget creates database name and runs a server on it in this
// process (labelled ledgerbench=server for CPU profiles). The server runs
// until stopServer or close.
func startTarget(ctx context.Context, adminURL, name string, pc ledger.PipelineConfig, log *slog.Logger) (*target, error) {
	dbURL, err := withDB(adminURL, name)
	if err != nil {
		return nil, err
	}
	if err := execSQL(ctx, adminURL, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	t := &target{adminURL: adminURL, name: name, adminKey: randomKey(), done: make(chan error, 1)}
	ready := make(chan string, 1)
	sctx, cancel := context.WithCancel(ctx)
	t.cancel = cancel
	cfg := server.Config{Addr: "127.0.0.1:0", PostgresURL: dbURL, Roles: []string{server.RoleAPI, server.RoleWorkers}, AdminKey: t.adminKey, Logger: log,
		Pipeline: pc, Ready: func(addr string) { ready <- addr }}
	go pprof.Do(sctx, pprof.Labels("ledgerbench", "server"), func(ctx context.Context) { t.done <- server.Run(ctx, cfg) })
	select {
	case addr := <-ready:
		t.baseURL = "http://" + addr
	case err := <-t.done:
		t.done = nil
		return nil, errors.Join(fmt.Errorf("server: %w", err), t.close())
	}
	if t.pool, err = pgxpool.New(ctx, dbURL); err != nil {
		return nil, errors.Join(err, t.close())
	}
	return t, nil
}

// setup creates the tenant and its key through the admin API, and the
// accounts in one COPY (10,000 accounts through the API would take longer
// than the measurement). It returns the tenant key.
func (t *target) setup(ctx context.Context, hc *http.Client, w *workload) (string, error) {
	if err := t.call(ctx, hc, "/v1/admin/tenants", map[string]string{"id": benchTenant}, nil); err != nil {
		return "", fmt.Errorf("create tenant: %w", err)
	}
	var key struct{ Key string }
	if err := t.call(ctx, hc, "/v1/admin/tenants/"+benchTenant+"/api-keys", struct{}{}, &key); err != nil {
		return "", fmt.Errorf("create key: %w", err)
	}
	// The benchmark measures the ledger, not the tenant's request quota
	// (1,000/s by default): lift it through the control plane.
	quota := map[string]any{"set": map[string]string{"quota.requests_per_sec": "1000000", "quota.burst": "1000000"},
		"reason": "bench ledger"}
	if err := t.send(ctx, hc, http.MethodPatch, "/v1/admin/settings/tenants/"+benchTenant, quota, nil); err != nil {
		return "", fmt.Errorf("lift quota: %w", err)
	}
	if err := ledger.NewStore(t.pool).CreateAccounts(ctx, benchTenant, w.inputs()); err != nil {
		return "", fmt.Errorf("create %d accounts: %w", len(w.accounts), err)
	}
	return key.Key, nil
}

// call POSTs in as the admin and decodes a 2xx answer into out.
func (t *target) call(ctx context.Context, hc *http.Client, path string, in, out any) error {
	return t.send(ctx, hc, http.MethodPost, path, in, out)
}

// send sends in as the admin with method and decodes a 2xx answer into out.
func (t *target) send(ctx context.Context, hc *http.Client, method, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, t.baseURL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(data))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// pipelineStats are the commit pipeline's cumulative counters.
type pipelineStats struct {
	batches, transactions, seconds float64
}

// scrape reads the pipeline's batch histograms from /metrics.
func (t *target) scrape(ctx context.Context, hc *http.Client) (pipelineStats, error) {
	var s pipelineStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.baseURL+"/metrics", nil)
	if err != nil {
		return s, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return s, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	fields := map[string]*float64{
		"bulwark_ledger_batch_transactions_count": &s.batches,
		"bulwark_ledger_batch_transactions_sum":   &s.transactions,
		"bulwark_ledger_batch_seconds_sum":        &s.seconds,
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, maxResponseBytes))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if p := fields[name]; ok && p != nil {
			if *p, err = strconv.ParseFloat(value, 64); err != nil {
				return s, fmt.Errorf("metric %s: %w", name, err)
			}
		}
	}
	return s, sc.Err()
}

// stopServer cancels the server and waits for it: HTTP drains, then the
// pipeline commits what it holds.
func (t *target) stopServer() error {
	if t.done == nil {
		return nil
	}
	t.cancel()
	err := <-t.done
	t.done = nil
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// check runs every ledger invariant, and checks that every transfer the
// clients saw acknowledged is stored (more may be: a request that timed out
// may have committed). The server must be stopped.
func (t *target) check(ctx context.Context, acked int64) ([]string, error) {
	rep, err := verify.Run(ctx, t.pool)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	var out []string
	for _, v := range rep.Violations {
		out = append(out, v.Check+": "+v.Detail)
	}
	if rep.Transactions < acked {
		out = append(out, fmt.Sprintf("acknowledged_stored: %d transfers acknowledged, %d stored", acked, rep.Transactions))
	}
	return out, nil
}

// close stops the server if it runs and drops the database.
func (t *target) close() error {
	err := t.stopServer()
	if t.pool != nil {
		t.pool.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if dropErr := execSQL(ctx, t.adminURL, "DROP DATABASE IF EXISTS "+t.name+" WITH (FORCE)"); dropErr != nil {
		err = errors.Join(err, fmt.Errorf("drop database %s: %w", t.name, dropErr))
	}
	return err
}

func execSQL(ctx context.Context, connURL, sql string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

func withDB(base, db string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("postgres url: %w", err)
	}
	u.Path = "/" + db
	return u.String(), nil
}

func randomKey() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+)
	return "bwa_bench_" + hex.EncodeToString(b[:])
}
