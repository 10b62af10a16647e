package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	bw "github.com/bulwark-ledger/bulwark/client"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

// TestClientRetriesAcrossServerKill: 16 goroutines send transfers through
// the Go client (automatic batching, retries with generated keys) while the
// server process is SIGKILLed and restarted twice. Every transfer the
// client acknowledged exists, with the key and id it reported; no transfer
// was applied twice (the client resends the same key: committed transfers
// never outnumber calls, and the balance equals the committed count).
func TestClientRetriesAcrossServerKill(t *testing.T) {
	url := pgtest.NewDB(t)
	addr := freeAddr(t)
	srv := startChild(t, url, addr)
	defer func() { srv.kill() }()
	base := "http://" + addr
	ctx := context.Background()
	admin, err := bw.New(base, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.CreateTenant(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	key, err := admin.CreateKey(ctx, "acme", bw.KeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	// Enough attempts and time to outlast a restart (about a second).
	c, err := bw.New(base, key.Key, bw.WithRetry(60, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, id := range []string{"src", "dst"} {
		if _, err := c.CreateAccount(ctx, bw.AccountInput{ID: id, Asset: "USD"}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	acked := map[string]string{} // idempotency key -> transaction id
	calls, failed := 0, 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tx, err := c.Transfer(ctx, bw.Tx{Postings: []bw.Posting{
					{Source: "src", Destination: "dst", Amount: bw.Uint64(1), Asset: "USD"}}})
				mu.Lock()
				calls++
				if err != nil {
					failed++
				} else {
					acked[tx.IdempotencyKey] = tx.ID
				}
				mu.Unlock()
			}
		})
	}
	for round := range 2 {
		time.Sleep(700 * time.Millisecond)
		srv.kill()
		t.Logf("kill %d", round+1)
		srv = startChild(t, url, addr)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d calls, %d acknowledged, %d failed after retries", calls, len(acked), failed)
	if len(acked) == 0 {
		t.Fatal("no transfer was acknowledged")
	}
	checkClientTransfers(t, url, acked, calls)
}

func checkClientTransfers(t *testing.T, url string, acked map[string]string, calls int) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	stored := map[string]string{}
	var k, id string
	rows, _ := conn.Query(context.Background(), "SELECT idempotency_key, id::text FROM transactions WHERE tenant_id = 'acme'") //nolint:rowserrcheck // pgx.ForEachRow checks rows.Err
	if _, err := pgx.ForEachRow(rows, []any{&k, &id}, func() error { stored[k] = id; return nil }); err != nil {
		t.Fatal(err)
	}
	for key, id := range acked {
		if stored[key] != id {
			t.Errorf("acknowledged %s as %s, stored as %q", key, id, stored[key])
		}
	}
	if len(stored) > calls {
		t.Fatalf("%d transactions committed for %d calls: some applied twice", len(stored), calls)
	}
	var credits string
	if err := conn.QueryRow(context.Background(), `SELECT credits_posted::text FROM accounts WHERE tenant_id = 'acme' AND id = 'dst'`).Scan(&credits); err != nil {
		t.Fatal(err)
	}
	if credits != fmt.Sprint(len(stored)) {
		t.Fatalf("dst credited %s for %d committed transfers", credits, len(stored))
	}
}
