package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestExample runs the example twice against a real server: the second
// run pays nothing again (same order keys) and the balances add up.
func TestExample(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{Addr: "127.0.0.1:0", PostgresURL: pgtest.NewDB(t), AdminKey: "bwa_example",
			Roles: []string{server.RoleAPI}, DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready: func(a string) { ready <- a }})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(60 * time.Second):
		t.Fatal("server did not start")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base = "http://" + base
	admin, err := client.New(base, "bwa_example")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.CreateTenant(ctx, "shop", "Shop"); err != nil {
		t.Fatal(err)
	}
	k, err := admin.CreateKey(ctx, "shop", client.KeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := run(ctx, base, k.Key); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(base, k.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bank, err := c.Account(ctx, "bank")
	if err != nil || bank.Posted != "-500000" {
		t.Fatalf("bank: %+v, %v: want -500000 (100 wallets funded once)", bank, err)
	}
	m, err := c.Account(ctx, "merchant:1")
	if err != nil || m.Seq == 0 || m.Seq > orders {
		t.Fatalf("merchant: %+v, %v: want 1 to %d payments", m, err, orders)
	}
}
