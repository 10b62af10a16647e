// Command transfer is a payment service in miniature: many goroutines
// move money through one shared client, whose automatic batching turns
// their single transfers into batch requests. Copy it as a starting point.
//
//	BULWARK_URL=http://127.0.0.1:8080 BULWARK_KEY=bwk_… go run ./examples/transfer
//
// It creates a funding account and 100 customer wallets (idempotently, so
// it can run again), then pays 1,000 orders from 32 workers and prints
// how many were paid and declined.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
)

const (
	workers   = 32
	orders    = 1000
	customers = 100
	asset     = "EUR"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv("BULWARK_URL"), os.Getenv("BULWARK_KEY")); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, url, key string) error {
	if url == "" {
		url = "http://127.0.0.1:8080"
	}
	// One client per server and key, shared by every goroutine: it holds
	// the connection pool and the batcher. Defaults: batches of up to
	// 8,190 transfers gathered for 200 µs, 5 attempts within 30 s.
	c, err := client.New(url, key, client.WithTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer c.Close() // sends what is gathered, waits for the answers
	if err := createAccounts(ctx, c); err != nil {
		return err
	}
	jobs := make(chan int)
	var paid, declined atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for order := range jobs {
				switch err := pay(ctx, c, order); {
				case err == nil:
					paid.Add(1)
				case errors.Is(err, client.ErrInsufficientFunds):
					declined.Add(1) // a business outcome, not a failure
				default:
					log.Printf("order %d: %v", order, err)
				}
			}
		})
	}
	start := time.Now()
	for order := 0; order < orders && ctx.Err() == nil; order++ {
		jobs <- order
	}
	close(jobs)
	wg.Wait()
	fmt.Printf("%d paid, %d declined in %s\n", paid.Load(), declined.Load(), time.Since(start).Round(time.Millisecond))
	return ctx.Err()
}

// pay charges one order to its customer's wallet. The idempotency key is
// derived from the order, so paying the same order twice (a retry after a
// timeout, a redelivered message) charges it once.
func pay(ctx context.Context, c *client.Client, order int) error {
	tx := client.Tx{
		IdempotencyKey: fmt.Sprintf("order-%d", order),
		Postings: []client.Posting{{
			Source:      fmt.Sprintf("customer:%d/wallet", order%customers),
			Destination: "merchant:1",
			Amount:      client.Uint64(uint64(100 + order%900)), // 1.00 to 9.99 EUR
			Asset:       asset,
		}},
		Metadata: []byte(fmt.Sprintf(`{"order":%d}`, order)),
	}
	_, err := c.Transfer(ctx, tx)
	var e *client.Error
	if err != nil && !errors.As(err, &e) && ctx.Err() == nil {
		// No answer (connection lost, timeout after the client's retries):
		// the transfer may or may not have committed. The same key settles it.
		_, err = c.Transfer(ctx, tx)
	}
	return err
}

// createAccounts creates the accounts and funds each wallet with 50.00 EUR
// once (the funding key is fixed per wallet).
func createAccounts(ctx context.Context, c *client.Client) error {
	accounts := []client.AccountInput{
		{ID: "bank", Asset: asset, Scale: 2, Rule: client.RuleNone},
		{ID: "merchant:1", Asset: asset, Scale: 2},
	}
	for i := range customers {
		accounts = append(accounts, client.AccountInput{ID: fmt.Sprintf("customer:%d/wallet", i), Asset: asset, Scale: 2,
			Rule: client.RuleDebitsMustNotExceedCredits})
	}
	var funding []client.Tx
	for _, a := range accounts {
		if _, err := c.CreateAccount(ctx, a); err != nil {
			return fmt.Errorf("create account %s: %w", a.ID, err)
		}
		if a.Rule == client.RuleDebitsMustNotExceedCredits {
			funding = append(funding, client.Tx{IdempotencyKey: "fund-" + a.ID,
				Postings: []client.Posting{{Source: "bank", Destination: a.ID, Amount: "5000", Asset: asset}}})
		}
	}
	// One explicit batch; each result is checked on its own.
	results, err := c.Submit(ctx, funding)
	if err != nil {
		return fmt.Errorf("fund wallets: %w", err)
	}
	for i, r := range results {
		if r.Err != nil {
			return fmt.Errorf("fund %s: %w", funding[i].Postings[0].Destination, r.Err)
		}
	}
	return nil
}
