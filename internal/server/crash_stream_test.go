package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/pgserver"
)

// TestCrashStream SIGKILLs the whole `bulwark serve` process (HTTP edge,
// ledger, relay and embedded broker die together, as they do for users of
// the embedded default) mid-load, restarts it on the same data directory,
// and checks the change stream with a plain read_committed consumer that is
// not the relay's code: after every restart the stream resumes within
// resumeBound, and at the end every committed transaction and entry is in
// it exactly once, each account's entries in seq order without a hole.
// BULWARK_CRASH_STREAM_KILLS sets the number of kills (make
// crash-test-stream runs 100); the seed is logged and replays with
// BULWARK_SEED.
func TestCrashStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bulwark binary and runs a whole server: not in -short")
	}
	t.Parallel()
	kills := 4
	if v, err := strconv.Atoi(os.Getenv("BULWARK_CRASH_STREAM_KILLS")); err == nil && v > 0 {
		kills = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("BULWARK_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d, %d kills", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 7))
	began := time.Now()
	bin := buildBulwark(t)
	dir := serveDataDir(t)
	addr := freeAddr(t)
	srv := startServe(t, bin, dir, addr, 0)
	defer func() { srv.kill() }()

	admin := &client{base: "http://" + addr, key: adminKey, http: &http.Client{Timeout: 10 * time.Second}}
	c := newTenant(t, admin, "acme")
	accounts := []string{"hot", "a1", "a2", "a3", "a4", "a5", "a6", "a7"}
	for _, id := range accounts {
		c.do(t, "POST", "/v1/accounts", map[string]any{"id": id, "asset": "USD"})
	}
	ld := &loader{c: c, accounts: accounts, acked: map[string]string{}}
	// Features state dies with the process too: a ledger feature fed by
	// the relay and a tenant-events feature fed while the kills happen.
	defineCrashFeatures(t, c)
	ff := &featureFeeder{c: c}
	sr := newStreamReader()
	var resume []time.Duration
	for round := range kills {
		fctx, stopFeed := context.WithCancel(context.Background())
		fed := make(chan struct{})
		go func() { ff.run(fctx, round); close(fed) }()
		ld.run(round, seed, time.Duration(400+rng.IntN(1200))*time.Millisecond, srv)
		stopFeed()
		<-fed
		srv = startServe(t, bin, dir, addr, round+1)
		d, err := waitResumed(t, c, sr, dir, srv.started, round)
		if err != nil {
			t.Fatalf("kill %d: %v (serve log %s)", round+1, err, srv.log)
		}
		ld.resend(t)
		ff.resend(t)
		resume = append(resume, d)
		if d > 2*time.Second {
			logSlowRestart(t, srv.log)
		}
		t.Logf("kill %d: %d acknowledged, stream resumed %v after the restart", round+1, len(ld.acked), d.Round(time.Millisecond))
	}
	// The stream must hold everything committed: read until the last
	// acknowledged transaction is there, then compare with the database.
	dbTx, dbEntries := ledgerRows(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := sr.readUntil(ctx, kafkaAddrs(t, dir), func() bool {
		ids := sr.txIDs()
		for id := range dbTx {
			if ids[id] == 0 {
				return false
			}
		}
		return true
	})
	rep := sr.check(dbTx, dbEntries)
	for id := range ld.ackedIDs() {
		if !dbTx[id] {
			t.Errorf("acknowledged transaction %s is not in the database", id)
		}
	}
	slices.Sort(resume)
	repairs, aborted, committed, indexes, repairMax := brokerRepairs(t, dir)
	t.Logf("kills %d, transactions acknowledged %d (database %d), events checked %d (transactions %d, entries %d), duplicates %d, gaps %d, out of order %d, extra %d, time to resume max %v median %v, broker repairs %d (open transactions aborted %d, half-committed completed %d, torn indexes rebuilt %d, longest %v), runtime %v",
		kills, len(ld.acked), len(dbTx), rep.events, rep.txns, rep.entries, rep.duplicates, rep.gaps, rep.disorder, rep.extra,
		resume[len(resume)-1].Round(time.Millisecond), resume[len(resume)/2].Round(time.Millisecond),
		repairs, aborted, committed, indexes, repairMax, time.Since(began).Round(time.Second))
	if repairs != kills {
		t.Errorf("%d broker repairs logged after %d SIGKILLs: every restart must detect the unclean shutdown", repairs, kills)
	}
	if err != nil {
		t.Errorf("reading the stream to its end: %v", err)
	}
	if rep.duplicates+rep.gaps+rep.disorder+rep.extra > 0 {
		t.Fatalf("change stream not exactly-once (seed %d):\n%s", seed, strings.Join(rep.samples, "\n"))
	}
	if len(ld.acked) == 0 || rep.entries < 2*len(ld.acked) {
		t.Fatalf("too little checked: %d acknowledged, %d entries", len(ld.acked), rep.entries)
	}
	ff.checkFeatures(t, bin, dir)
}

// resumeBound is how long after a restart the stream must carry a new
// transaction again.
const resumeBound = 30 * time.Second

// waitResumed commits one transaction on the restarted server and returns
// how long after the process started the stream carried it: the relay has
// then recovered its checkpoint and relayed everything before it.
func waitResumed(t *testing.T, c *client, sr *streamReader, dir string, started time.Time, round int) (time.Duration, error) {
	t.Helper()
	key := fmt.Sprintf("resume-%d", round)
	r := c.do(t, "POST", "/v1/transactions", transferBody(key, "a1", "hot", "1"))
	if r.status != 201 {
		return 0, fmt.Errorf("transfer after restart: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), resumeBound)
	defer cancel()
	err := sr.readUntil(ctx, kafkaAddrs(t, dir), func() bool { return sr.txIDs()[id] > 0 })
	if err != nil {
		return 0, fmt.Errorf("stream did not resume within %v: %w", resumeBound, err)
	}
	return time.Since(started), nil
}

// logSlowRestart shows the warnings of a restart that took long to
// resume the stream (a relay session that failed and backed off, or a
// machine busy with other work).
func logSlowRestart(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("slow restart: %v", err)
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			if len(line) > 400 {
				line = line[:400]
			}
			t.Logf("slow restart: %s", line)
		}
	}
}

// brokerRepairs counts the embedded broker's repairs in the serve logs and
// the transactions they aborted and completed and the indexes rebuilt.
func brokerRepairs(t *testing.T, dir string) (repairs, aborted, committed, indexes int, longest time.Duration) {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "serve-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			var l struct {
				Msg       string   `json:"msg"`
				Aborted   []string `json:"aborted"`
				Committed []string `json:"committed"`
				Indexes   []string `json:"indexes"`
				RepairMS  int64    `json:"repair_ms"`
			}
			if json.Unmarshal([]byte(line), &l) != nil || !strings.Contains(l.Msg, "repaired after an unclean shutdown") {
				continue
			}
			repairs++
			aborted += len(l.Aborted)
			committed += len(l.Committed)
			indexes += len(l.Indexes)
			longest = max(longest, time.Duration(l.RepairMS)*time.Millisecond)
		}
	}
	return repairs, aborted, committed, indexes, longest
}

// loader drives transfers over HTTP and remembers what was acknowledged.
type loader struct {
	c        *client
	accounts []string
	mu       sync.Mutex
	acked    map[string]string // idempotency key → transaction id
	unacked  []map[string]any  // requests without a definite answer yet
}

// run sends transfers from 6 clients for d, then SIGKILLs srv mid-load.
func (l *loader) run(round int, seed uint64, d time.Duration, srv *serveProc) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(round*100+w)))
			for i := 0; ctx.Err() == nil; i++ {
				src := l.accounts[rng.IntN(len(l.accounts))]
				dst := "hot"
				if src == "hot" {
					dst = l.accounts[1+rng.IntN(len(l.accounts)-1)]
				}
				body := transferBody(fmt.Sprintf("r%d-w%d-%d", round, w, i), src, dst, strconv.Itoa(1+rng.IntN(1000)))
				r, err := l.c.try("POST", "/v1/transactions", body)
				l.record(body, r, err)
			}
		}()
	}
	time.Sleep(d)
	srv.kill() // mid-load: requests in flight get no answer
	cancel()
	wg.Wait()
}

func (l *loader) record(body map[string]any, r response, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || r.status >= 500 || (r.status != 200 && r.status != 201) {
		l.unacked = append(l.unacked, body)
		return
	}
	l.acked[body["idempotency_key"].(string)] = r.body["id"].(string)
}

// resend retries every unanswered request with its key until it gets a
// definite answer from the restarted server.
func (l *loader) resend(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	retry := l.unacked
	l.unacked = nil
	l.mu.Unlock()
	for _, body := range retry {
		for attempt := 0; ; attempt++ {
			r, err := l.c.try("POST", "/v1/transactions", body)
			if err == nil && (r.status == 200 || r.status == 201) {
				l.record(body, r, nil)
				break
			}
			if attempt > 100 {
				t.Fatalf("%s never answered: %v %d %s", body["idempotency_key"], err, r.status, r.raw)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (l *loader) ackedIDs() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := map[string]bool{}
	for _, id := range l.acked {
		ids[id] = true
	}
	return ids
}

// serveProc is a running `bulwark serve`.
type serveProc struct {
	cmd     *exec.Cmd
	log     string
	started time.Time
	done    chan struct{}
}

func (p *serveProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// buildBulwark builds cmd/bulwark into a temporary directory.
func buildBulwark(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bulwark")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/bulwark")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serveDataDir is a data directory the embedded PostgreSQL's user can
// enter (t.TempDir is 0700 root when the tests run as root). Cleanup stops
// the postmaster, which outlives a SIGKILLed serve in its own process group.
func serveDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bulwark-crash-stream-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pgDir := filepath.Join(dir, "postgres")
		if _, err := os.Stat(filepath.Join(pgDir, "postmaster.pid")); err == nil {
			if c, err := pgserver.Start(context.Background(), pgserver.Config{Dir: pgDir}); err == nil {
				if err := c.Stop(); err != nil {
					t.Logf("stop embedded postgres: %v", err)
				}
			}
		}
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("data directory kept: %s", dir)
		}
	})
	return dir
}

func startServe(t *testing.T, bin, dir, addr string, n int) *serveProc {
	t.Helper()
	logPath := filepath.Join(dir, fmt.Sprintf("serve-%d.log", n))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--data-dir", dir, "--addr", addr, "--admin-key", adminKey, "--log-level", "info")
	cmd.Stdout, cmd.Stderr = logf, logf
	p := &serveProc{cmd: cmd, log: logPath, started: time.Now(), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("serve exited at start (log %s)", logPath)
		default:
		}
		if time.Now().After(deadline) {
			p.kill()
			t.Fatalf("serve on %s not ready: %v (log %s)", addr, err, logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func kafkaAddrs(t *testing.T, dir string) []string {
	t.Helper()
	addrs, err := readAddr(dir)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

// ledgerRows reads the committed transactions and each account's last
// entry seq from the embedded cluster the server left running.
func ledgerRows(t *testing.T, dir string) (map[string]bool, map[string]int64) {
	t.Helper()
	ctx := context.Background()
	pc, err := pgserver.Start(ctx, pgserver.Config{Dir: filepath.Join(dir, "postgres")})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pc.URL("bulwark"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx := map[string]bool{}
	rows, _ := conn.Query(ctx, "SELECT id::text FROM transactions")
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		tx[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	entries := map[string]int64{}
	rows, _ = conn.Query(ctx, "SELECT tenant_id || '/' || account_id, max(seq) FROM entries GROUP BY 1")
	for rows.Next() {
		var acct string
		var n int64
		if err := rows.Scan(&acct, &n); err != nil {
			t.Fatal(err)
		}
		entries[acct] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return tx, entries
}
