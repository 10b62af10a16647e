package ledger_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
)

func TestArchiveKeepsBalancesAndChainsVerifiable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, "acme")
	f.account(t, "acme", "a", "none")
	f.account(t, "acme", "b", "none")
	for i := range 5 {
		f.submit(t, "acme", transfer(fmt.Sprint("k", i), "a", "b", "10"))
	}
	// Age the first two links of each chain into January 2020.
	jan := time.Date(2020, 1, 15, 0, 0, 0, 0, time.UTC)
	if err := ledger.EnsurePartitions(ctx, f.pool, jan); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, "UPDATE entries SET created_at = $1::timestamptz + seq * interval '1 second' WHERE seq <= 2", jan); err != nil {
		t.Fatal(err)
	}
	before, _ := f.store.BalanceAt(ctx, "acme", "b", jan.Add(time.Hour))
	dir := t.TempDir()
	done, err := ledger.Archive(ctx, f.pool, time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0].Name != "entries_y2020m01" || done[0].Rows != 4 {
		t.Fatalf("archived %+v, want entries_y2020m01 with 4 rows", done)
	}
	file, err := os.Open(done[0].File)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	lines := 0
	for sc := bufio.NewScanner(file); sc.Scan(); {
		lines++
	}
	if lines != 4 {
		t.Fatalf("archive file has %d lines, want 4", lines)
	}
	var exists bool
	f.pool.QueryRow(ctx, "SELECT to_regclass('entries_y2020m01') IS NOT NULL").Scan(&exists)
	if exists {
		t.Fatal("archived partition still attached")
	}
	if a := balances(t, f, "acme", "b"); a.Posted != "50" || a.Seq != 5 {
		t.Fatalf("b after archive: posted=%s seq=%d", a.Posted, a.Seq)
	}
	after, err := f.store.BalanceAt(ctx, "acme", "b", jan.Add(time.Hour))
	if err != nil || after.Posted != before.Posted || after.Posted != "20" {
		t.Fatalf("balance as of January: %s before archiving, %s after (%v), want 20", before.Posted, after.Posted, err)
	}
	es, err := f.store.Entries(ctx, "acme", "b", 0, 10)
	if err != nil || len(es) != 3 || es[0].Seq != 3 {
		t.Fatalf("history after archive: %d entries from seq %d (%v)", len(es), es[0].Seq, err)
	}
	mustVerify(t, f)
	// New transfers still chain on from the live balance.
	f.submit(t, "acme", transfer("late", "a", "b", "1"))
	mustVerify(t, f)
}
