package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/ledger/verify"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

// child is a server process the crash test can SIGKILL.
type child struct {
	cmd  *exec.Cmd
	addr string
}

// startChild starts a server child; env adds variables
// (BULWARK_TEST_CHILD_ROLES, BULWARK_TEST_CHILD_DATA_DIR: see TestMain).
func startChild(t *testing.T, url, addr string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BULWARK_TEST_CHILD_POSTGRES="+url, "BULWARK_TEST_CHILD_ADDR="+addr,
		"BULWARK_TEST_CHILD_ADMIN_KEY="+adminKey)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, addr: addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) {
			c.kill()
			t.Fatalf("child server on %s not ready: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// op is one client request with its idempotency key, resent unchanged
// until it gets a definite answer.
type op struct {
	key   string
	body  map[string]any
	async bool
}

type outcome struct {
	id string // committed transaction id (sync), or journal id (async)
}

// TestCrashRecovery runs load against two server processes on one database,
// SIGKILLs one of them
// mid-load several times, restarts it, and resends every request that got
// no definite answer with its idempotency key. Afterwards: invariants hold,
// every acknowledged transaction exists exactly once with the id first
// answered, and every accepted async request has exactly one outcome.
// BULWARK_CRASH_KILLS sets the number of kills (make crash-test runs 20).
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	kills := 3
	if v, err := strconv.Atoi(os.Getenv("BULWARK_CRASH_KILLS")); err == nil && v > 0 {
		kills = v
	}
	s := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d kills", s, kills)
	url := pgtest.NewDB(t)
	// Two server processes on one database; each round SIGKILLs one of them
	// while clients of both keep sending.
	addrs := [2]string{freeAddr(t), freeAddr(t)}
	srvs := [2]*child{startChild(t, url, addrs[0]), startChild(t, url, addrs[1])}
	defer func() {
		for _, s := range srvs {
			s.kill()
		}
	}()
	admin := &client{base: "http://" + addrs[0], key: adminKey, http: &http.Client{Timeout: 10 * time.Second}}
	c0 := newTenant(t, admin, "acme")
	clients := [2]*client{c0, {base: "http://" + addrs[1], key: c0.key, http: c0.http}}
	c := c0
	accounts := []string{"hot", "a1", "a2", "a3", "a4", "a5"}
	for _, id := range accounts {
		c.do(t, "POST", "/v1/accounts", map[string]any{"id": id, "asset": "USD"})
	}

	var mu sync.Mutex
	acked := map[string]outcome{}
	var unacked []op
	record := func(o op, r response, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil || r.status >= 500:
			unacked = append(unacked, o)
		case o.async && (r.status == 202 || r.status == 200):
			acked[o.key] = outcome{id: r.body["id"].(string)}
		case r.status == 201 || r.status == 200:
			acked[o.key] = outcome{id: r.body["id"].(string)}
		default:
			t.Errorf("%s: unexpected %d %s", o.key, r.status, r.raw)
		}
	}
	send := func(c *client, o op) (response, error) {
		if o.async {
			return c.try("POST", "/v1/transactions", o.body, "Prefer", "respond-async")
		}
		return c.try("POST", "/v1/transactions", o.body)
	}
	for round := 0; round < kills; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(s, uint64(round*100+w)))
				for i := 0; ctx.Err() == nil; i++ {
					src := accounts[rng.IntN(len(accounts))]
					dst := "hot"
					if src == "hot" {
						dst = accounts[1+rng.IntN(len(accounts)-1)]
					}
					o := op{key: fmt.Sprintf("r%d-w%d-%d", round, w, i), async: rng.IntN(5) == 0,
						body: transferBody(fmt.Sprintf("r%d-w%d-%d", round, w, i), src, dst, strconv.Itoa(1+rng.IntN(1000)))}
					r, err := send(clients[w%2], o)
					record(o, r, err)
				}
			}()
		}
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		victim := round % 2
		srvs[victim].kill() // mid-load: its requests in flight get no answer
		cancel()
		wg.Wait()
		srvs[victim] = startChild(t, url, addrs[victim])
		// Resend everything unanswered until each gets a definite answer.
		mu.Lock()
		retry := unacked
		unacked = nil
		mu.Unlock()
		for _, o := range retry {
			for attempt := 0; ; attempt++ {
				r, err := send(clients[attempt%2], o) // either process may answer the retry
				if err == nil && r.status < 500 {
					record(o, r, err)
					break
				}
				if attempt > 50 {
					t.Fatalf("%s never answered: %v %d", o.key, err, r.status)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		t.Logf("round %d: %d acknowledged, %d resent after the kill", round, len(acked), len(retry))
	}
	waitJournalDrained(t, url)
	checkExactlyOnce(t, url, acked)
}

func waitJournalDrained(t *testing.T, url string) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for i := 0; ; i++ {
		var n int
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM journal WHERE state = 'accepted'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if i > 600 {
			t.Fatalf("%d journal entries never applied", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func checkExactlyOnce(t *testing.T, url string, acked map[string]outcome) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rep, err := verify.Run(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("invariants after crashes: %s", rep)
	}
	stored := map[string]string{}
	var k, id string
	rows, _ := pool.Query(ctx, "SELECT idempotency_key, id::text FROM transactions WHERE tenant_id = 'acme'") //nolint:rowserrcheck // pgx.ForEachRow checks rows.Err
	if _, err := pgx.ForEachRow(rows, []any{&k, &id}, func() error { stored[k] = id; return nil }); err != nil {
		t.Fatal(err)
	}
	journal := map[string]string{}
	var state string
	rows, _ = pool.Query(ctx, "SELECT id::text, state FROM journal") //nolint:rowserrcheck // pgx.ForEachRow checks rows.Err
	if _, err := pgx.ForEachRow(rows, []any{&id, &state}, func() error { journal[id] = state; return nil }); err != nil {
		t.Fatal(err)
	}
	for key, o := range acked {
		if st, isJournal := journal[o.id]; isJournal {
			if st != "applied" {
				t.Errorf("async %s: journal state %s", key, st)
			}
			if _, ok := stored[key]; !ok {
				t.Errorf("async %s applied but its transaction is missing", key)
			}
			continue
		}
		if stored[key] != o.id {
			t.Errorf("acknowledged %s as %s, stored as %q", key, o.id, stored[key])
		}
	}
	if len(stored) != len(acked) {
		t.Errorf("%d transactions stored, %d acknowledged: something committed without an answer ever being resent", len(stored), len(acked))
	}
	t.Logf("%d acknowledged transactions, each stored exactly once; %s", len(acked), rep)
}
