package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
)

// TestBatching: 200 concurrent Transfers from 32 goroutines each get their
// own transaction, balances add up, and they took fewer requests than
// calls.
func TestBatching(t *testing.T) {
	base, _, key := setup(t)
	cnt := newCounter()
	c := newClient(t, base, key, client.WithHTTPClient(&http.Client{Transport: cnt}), client.WithBatching(64, 5*time.Millisecond))
	ctx := context.Background()
	const goroutines, perG = 32, 7 // 224 ≥ 200 transfers
	var mu sync.Mutex
	ids := map[string]string{} // transaction id → key
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				k := fmt.Sprintf("b-%d-%d", g, i)
				tx, err := c.Transfer(ctx, transfer(k, "world", "merchant:7", uint64(g+1)))
				if err != nil {
					errs <- err
					return
				}
				if tx.IdempotencyKey != k || tx.Postings[0].Amount != client.Uint64(uint64(g+1)) {
					errs <- fmt.Errorf("call %s got transaction %+v", k, tx)
					return
				}
				mu.Lock()
				ids[tx.ID] = k
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(ids) != goroutines*perG {
		t.Fatalf("%d distinct transactions, want %d", len(ids), goroutines*perG)
	}
	want := uint64(0)
	for g := range goroutines {
		want += uint64(g+1) * perG
	}
	m, err := c.Account(ctx, "merchant:7")
	if err != nil || m.CreditsPosted != client.Uint64(want) {
		t.Fatalf("merchant credits %v, want %d (%v)", m, want, err)
	}
	batches, singles := cnt.get("POST /v1/transactions/batch"), cnt.get("POST /v1/transactions")
	t.Logf("%d calls in %d batch requests", goroutines*perG, batches)
	if singles != 0 || batches == 0 || batches >= goroutines*perG/2 {
		t.Fatalf("%d batch and %d single requests for %d calls: want fewer than half as many batches as calls", batches, singles, goroutines*perG)
	}
}

// TestBatchingKeepsResultsApart: in one batch, a rejected transfer's error
// goes to its caller only; two concurrent calls with the same key land in
// different batches (the server refuses a batch with duplicate keys), so
// both get the same transaction.
func TestBatchingKeepsResultsApart(t *testing.T) {
	base, _, key := setup(t)
	cnt := newCounter()
	c := newClient(t, base, key, client.WithHTTPClient(&http.Client{Transport: cnt}), client.WithBatching(100, 50*time.Millisecond))
	ctx := context.Background()
	type out struct {
		tx  *client.Transaction
		err error
	}
	txs := []client.Tx{
		transfer("ok-1", "world", "merchant:7", 1),
		transfer("poor", "customer:1/wallet", "merchant:7", 1), // empty wallet
		transfer("same", "world", "merchant:7", 2),
		transfer("same", "world", "merchant:7", 2),
		transfer("ok-2", "world", "merchant:7", 3),
	}
	res := make([]out, len(txs))
	var wg sync.WaitGroup
	for i, tx := range txs {
		wg.Go(func() {
			res[i].tx, res[i].err = c.Transfer(ctx, tx)
		})
	}
	wg.Wait()
	for _, i := range []int{0, 2, 3, 4} {
		if res[i].err != nil || res[i].tx.IdempotencyKey != txs[i].IdempotencyKey {
			t.Errorf("call %d: %+v, %v", i, res[i].tx, res[i].err)
		}
	}
	var e *client.Error
	if !errors.Is(res[1].err, client.ErrInsufficientFunds) || !errors.As(res[1].err, &e) || e.Index != 0 {
		t.Errorf("poor call: %v, want ErrInsufficientFunds with index 0 (as if sent alone)", res[1].err)
	}
	if res[2].err == nil && res[3].err == nil && (res[2].tx.ID != res[3].tx.ID || res[2].tx.Replayed == res[3].tx.Replayed) {
		t.Errorf("same key twice: %+v and %+v, want one transaction, one replay", res[2].tx, res[3].tx)
	}
	if n := cnt.get("POST /v1/transactions/batch"); n < 2 || n > 3 {
		t.Errorf("%d batch requests, want 2 (or 3 if the linger split them)", n)
	}
}

// TestCloseDrains: Close sends what is gathered, answers its callers, and
// later calls get ErrClosed.
func TestCloseDrains(t *testing.T) {
	base, _, key := setup(t)
	c, err := client.New(base, key, client.WithBatching(1000, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	done := make(chan error, 10)
	for i := range 10 {
		go func() {
			_, err := c.Transfer(ctx, transfer(fmt.Sprintf("c-%d", i), "world", "merchant:7", 1))
			done <- err
		}()
	}
	time.Sleep(50 * time.Millisecond) // the calls are queued, the linger runs
	c.Close()
	for range 10 {
		if err := <-done; err != nil {
			t.Errorf("call queued before Close: %v", err)
		}
	}
	if _, err := c.Transfer(ctx, transfer("late", "world", "merchant:7", 1)); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Transfer after Close: %v, want ErrClosed", err)
	}
}

// TestCallerCancel: a caller whose ctx ends gets its error; the others of
// the batch are not affected.
func TestCallerCancel(t *testing.T) {
	base, _, key := setup(t)
	c := newClient(t, base, key, client.WithBatching(100, 100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var errCancel, errOK error
	wg.Go(func() { _, errCancel = c.Transfer(ctx, transfer("gone", "world", "merchant:7", 1)) })
	wg.Go(func() { _, errOK = c.Transfer(context.Background(), transfer("stays", "world", "merchant:7", 1)) })
	wg.Wait()
	if !errors.Is(errCancel, context.DeadlineExceeded) || errOK != nil {
		t.Fatalf("cancelled caller: %v; other caller: %v", errCancel, errOK)
	}
}
