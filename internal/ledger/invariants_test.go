//go:build bulwark_invariants

package ledger

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

// appliedBatch is a batch applied in memory as applyOnce would after its
// locks: a posted transfer a→b of 5 and a hold b→a of 2, on accounts whose
// chains are at seq 3 and 7.
func appliedBatch(t *testing.T) *batchState {
	t.Helper()
	b := newBatchState(nil)
	b.accounts[acctKey{"t", "a"}] = &acct{asset: "USD", rule: RuleNone, seq: 3, cp: amount.FromUint64(100)}
	b.accounts[acctKey{"t", "b"}] = &acct{asset: "USD", rule: RuleNone, seq: 7, dp: amount.FromUint64(40)}
	b.locked = lockedSnapshot(b.accounts)
	moves := []struct {
		tx     string
		src    string
		dst    string
		amt    uint64
		effect Effect
	}{{"tx1", "a", "b", 5, EffectPosted}, {"tx2", "b", "a", 2, EffectHold}}
	for _, m := range moves {
		p := Posting{Source: m.src, Destination: m.dst, Amount: amount.FromUint64(m.amt), Asset: "USD"}
		if err := b.move("t", m.tx, 0, p, m.effect, p.Amount); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func mustPanicWith(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one saying %q", want)
		}
		if msg := fmt.Sprint(r); !strings.Contains(msg, want) {
			t.Fatalf("panic %q, want one saying %q", msg, want)
		}
	}()
	f()
}

// TestBatchInvariantsHold: a correctly applied batch passes the checks.
func TestBatchInvariantsHold(t *testing.T) {
	t.Parallel()
	checkBatchInvariants(appliedBatch(t))
}

// TestBatchInvariantsFire: each kind of corruption of an applied batch
// panics before anything would be written, saying what broke.
func TestBatchInvariantsFire(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		corrupt func(b *batchState)
		want    string
	}{
		{"unbalanced transaction", func(b *batchState) {
			b.entries[1].amount = amount.FromUint64(6)
		}, "transaction tx1 of tenant \"t\" does not balance in USD (posted): debits 5, credits 6"},
		{"unbalanced per effect", func(b *batchState) {
			b.entries[3].effect = EffectPosted
		}, "transaction tx2 of tenant \"t\" does not balance in USD (hold): debits 2, credits 0"},
		{"gap in a chain", func(b *batchState) {
			b.entries[2].seq++
		}, "account t/b: entry seq 10 follows seq 8"},
		{"chain not continued from the lock", func(b *batchState) {
			b.locked[acctKey{"t", "a"}] = acct{asset: "USD", seq: 2}
		}, "account t/a: entry seq 4 follows seq 2"},
		{"wrong balance-after", func(b *batchState) {
			b.entries[0].after.dp = amount.FromUint64(4)
		}, "account t/a seq 4: balance-after (debits_posted 4,"},
		{"account row not the chain's end", func(b *batchState) {
			b.accounts[acctKey{"t", "b"}].cpend = amount.FromUint64(1)
		}, "account t/b is written as seq 9"},
		{"unlocked account", func(b *batchState) {
			delete(b.locked, acctKey{"t", "b"})
		}, "entry for account t/b, which the batch did not lock"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := appliedBatch(t)
			c.corrupt(b)
			mustPanicWith(t, c.want, func() { checkBatchInvariants(b) })
		})
	}
}
