package export

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/export/exporttest"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// env is a migrated database with a live control plane, a store and a
// runner factory.
type env struct {
	t       *testing.T
	url     string
	pool    *pgxpool.Pool
	watcher *control.Watcher
	cstore  *control.Store
	store   *Store
	dir     string
	log     *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	url := pgtest.NewDB(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	reg := control.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := control.NewWatcher(pool, reg, log, nil, control.WithPollInterval(50*time.Millisecond))
	if err := w.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e := &env{t: t, url: url, pool: pool, watcher: w, cstore: control.NewStore(pool, reg), dir: t.TempDir(), log: log}
	e.store = NewStore(pool, w)
	e.store.ChunkRows = 500
	return e
}

// set changes a setting for tenant and waits until the watcher has it.
func (e *env) set(tenant, key, value string) {
	e.t.Helper()
	res, err := e.cstore.Apply(context.Background(), tenant, []control.Change{{Key: key, Value: value}},
		control.Actor{KeyID: "admin", Reason: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.watcher.Version() < res.Version {
		if time.Now().After(deadline) {
			e.t.Fatalf("watcher did not reach version %d", res.Version)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runner starts export workers until the test ends (or stop is called).
func (e *env) runner(cfg Config, hook func(*Job)) (stop func()) {
	e.t.Helper()
	cfg.Dir = e.dir
	if cfg.Poll == 0 {
		cfg.Poll = 20 * time.Millisecond
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = 100 * time.Millisecond
	}
	if cfg.WorkerID == "" {
		cfg.WorkerID = "test"
	}
	normal, err := OpenPool(context.Background(), e.url, 6, 30*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	huge, err := OpenPool(context.Background(), e.url, 6, 30*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	lim := ratelimit.New(ratelimit.FromControl(e.watcher, control.TaskExportHuge))
	r, err := NewRunner(cfg, normal, huge, e.watcher, lim, e.log, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	r.afterChunk = hook
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			normal.Close()
			huge.Close()
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// wait polls until job id reaches a final state.
func (e *env) wait(tenant, id string, within time.Duration) *Job {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, err := e.store.Get(context.Background(), tenant, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if j.finished() {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("export %s still %s after %v (rows %d)", id, j.State, within, j.RowsWritten)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) create(tenant string, req Request) *Job {
	e.t.Helper()
	if req.Format == "" {
		req.Format = FormatCSV
	}
	if req.Compression == "" {
		req.Compression = CompressionNone
	}
	if p := req.validate(); p != nil {
		e.t.Fatalf("invalid test request: %v", p)
	}
	j, _, err := e.store.Create(context.Background(), tenant, req)
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

// content reads an export's file, gunzipped when compressed.
func (e *env) content(j *Job) []byte {
	e.t.Helper()
	b, err := os.ReadFile(filePath(e.dir, j))
	if err != nil {
		e.t.Fatal(err)
	}
	if sum := fmt.Sprintf("%x", sha256.Sum256(b)); sum != j.SHA256 {
		e.t.Errorf("file SHA-256 %s, manifest %s", sum, j.SHA256)
	}
	if int64(len(b)) != j.FileOffset {
		e.t.Errorf("file holds %d bytes, job says %d", len(b), j.FileOffset)
	}
	if j.Request.Compression != CompressionGzip {
		return b
	}
	zr, err := gzip.NewReader(bytes.NewReader(b)) // multistream: reads every member
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// copyCSV is what PostgreSQL's COPY writes for the job's query at its cut-off.
func (e *env) copyCSV(j *Job) []byte {
	e.t.Helper()
	conn, err := e.pool.Acquire(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Release()
	var buf bytes.Buffer
	if _, err := conn.Conn().PgConn().CopyTo(context.Background(), &buf, CopyStatement(j)); err != nil {
		e.t.Fatal(err)
	}
	return buf.Bytes()
}

// sqlRows reads the job's rows by direct SQL at its cut-off, as text.
func (e *env) sqlRows(j *Job) [][]*string {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), CopySQL(j), CopyArgs(j)...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out [][]*string
	for rows.Next() {
		var row []*string
		for _, v := range rows.RawValues() {
			if v == nil {
				row = append(row, nil)
			} else {
				s := string(v)
				row = append(row, &s)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// checkJSONL compares a JSONL export with the rows of direct SQL, row by
// row and column by column.
func (e *env) checkJSONL(j *Job, body []byte) {
	e.t.Helper()
	want := e.sqlRows(j)
	cols := Columns(j.Request.Kind)
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		if n >= len(want) {
			e.t.Fatalf("JSONL has more than the %d rows of SQL", len(want))
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			e.t.Fatalf("line %d: %v", n+1, err)
		}
		if len(got) != len(cols) {
			e.t.Fatalf("line %d: %d members, want %d", n+1, len(got), len(cols))
		}
		for c, col := range cols {
			e.checkValue(n, col, got[col.Name], want[n][c])
		}
		n++
	}
	if n != len(want) {
		e.t.Fatalf("JSONL has %d rows, SQL %d", n, len(want))
	}
}

func (e *env) checkValue(row int, col Column, got json.RawMessage, want *string) {
	e.t.Helper()
	if want == nil {
		if string(got) != "null" {
			e.t.Fatalf("row %d %s: %s, want null", row, col.Name, got)
		}
		return
	}
	switch col.Type {
	case "integer":
		if string(got) != *want {
			e.t.Fatalf("row %d %s: %s, want %s", row, col.Name, got, *want)
		}
	case "json":
		var a, b any
		if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(*want), &b) != nil {
			e.t.Fatalf("row %d %s: bad JSON %s", row, col.Name, got)
		}
		if fmt.Sprint(a) != fmt.Sprint(b) {
			e.t.Fatalf("row %d %s: %s, want %s", row, col.Name, got, *want)
		}
	default:
		var s string
		if err := json.Unmarshal(got, &s); err != nil || s != *want {
			e.t.Fatalf("row %d %s: %s, want %q", row, col.Name, got, *want)
		}
	}
}

// TestExportsMatchSQL exports every kind in every format and compression
// and compares with direct SQL at the same cut-off: CSV byte for byte
// with COPY, JSONL value by value. A write after the cut-off is absent.
func TestExportsMatchSQL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := exporttest.Seed(ctx, e.pool, "acme", 23, 1700); err != nil {
		t.Fatal(err)
	}
	e.set("acme", control.KeyExportMaxInFlight, "100")
	from, to := exporttest.Base, exporttest.Base.AddDate(10, 0, 0)
	mid := exporttest.Base.Add(1200 * time.Millisecond)
	reqs := []Request{
		{Kind: KindEntries, From: &from, To: &to},
		{Kind: KindEntries, AccountID: "acct-000007", From: &from, To: &to},
		{Kind: KindTransactions, From: &from, To: &mid},
		{Kind: KindAccounts},
	}
	var jobs []*Job
	for _, r := range reqs {
		for _, f := range []string{FormatCSV, FormatJSONL} {
			for _, c := range []string{CompressionNone, CompressionGzip} {
				r.Format, r.Compression = f, c
				jobs = append(jobs, e.create("acme", r))
			}
		}
	}
	// Written after every cut-off (created_at from the clock, as the
	// ledger does): in no export.
	if _, err := e.pool.Exec(ctx, `INSERT INTO entries (tenant_id, account_id, seq, transaction_id, posting, side, effect,
			amount, asset, debits_posted, credits_posted, debits_pending, credits_pending, created_at)
		VALUES ('acme', 'acct-000007', 100000, gen_random_uuid(), 0, 'D', 'posted', 5, 'USD', 9, 9, 0, 0, clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	e.runner(Config{NormalWorkers: 3, HugeWorkers: 1}, nil)
	for _, j := range jobs {
		name := fmt.Sprintf("%s/%s/%s/%s", j.Request.Kind, j.Request.AccountID, j.Request.Format, j.Request.Compression)
		got := e.wait("acme", j.ID, 60*time.Second)
		if got.State != StateSucceeded {
			t.Fatalf("%s: %s: %s", name, got.State, got.Error)
		}
		body := e.content(got)
		t.Logf("%s: %d rows, %d bytes, %d chunks", name, got.RowsWritten, len(body), got.ChunksDone)
		if j.Request.Format == FormatCSV {
			want := e.copyCSV(got)
			if !bytes.Equal(body, want) {
				t.Fatalf("%s: CSV differs from COPY (%d vs %d bytes)", name, len(body), len(want))
			}
			if n := int64(bytes.Count(want, []byte("\n")) - 1); j.Request.Kind == KindEntries && j.Request.AccountID == "" && n < 3400 {
				t.Fatalf("%s: only %d lines", name, n)
			}
		} else {
			e.checkJSONL(got, body)
		}
		if strings.Contains(string(body), "100000,") {
			t.Errorf("%s: holds the entry written after the cut-off", name)
		}
		if got.RowsWritten != int64(len(e.sqlRows(got))) {
			t.Errorf("%s: rows_written %d, SQL %d", name, got.RowsWritten, len(e.sqlRows(got)))
		}
	}
}
