//go:build bulwark_invariants

package ledger

import (
	"fmt"
	"math/big"
	"math/bits"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

// This file asserts the invariants of a batch after it is applied in
// memory and before its writes are queued. It is built only with the tag
// bulwark_invariants, which `make test` (and so every test run of the
// suite) sets: the checks cost an extra pass over the batch's entries while
// the batch holds its row locks, which production does not pay. A
// violation is a programmer error, so it panics, naming what broke.

// lockedSnapshot copies the account rows as locked, before the batch
// changes them: the start of every chain the batch continues.
func lockedSnapshot(accounts map[acctKey]*acct) map[acctKey]acct {
	m := make(map[acctKey]acct, len(accounts))
	for k, a := range accounts {
		m[k] = *a
	}
	return m
}

// checkBatchInvariants panics unless, for the entries b is about to write:
//   - every transaction balances per asset and effect (its debit entries
//     sum to its credit entries), hence so does the batch per tenant and
//     asset;
//   - each account's new entries continue its locked chain: seq = locked
//     seq + 1, + 2, … in order, each balance-after = the previous one plus
//     the entry's own effect, and the account row written is the last
//     entry's balance-after (an account without entries is unchanged).
func checkBatchInvariants(b *batchState) {
	checkBalanced(b.entries)
	checkChains(b)
}

// wide is an unsigned sum of up to 2^64 Uint128 amounts without overflow.
type wide struct{ hi2, hi, lo uint64 }

func (w *wide) add(a amount.Uint128) {
	var c uint64
	w.lo, c = bits.Add64(w.lo, a.Lo, 0)
	w.hi, c = bits.Add64(w.hi, a.Hi, c)
	w.hi2 += c
}

func (w wide) String() string {
	v := new(big.Int).SetUint64(w.hi2)
	v.Lsh(v, 64).Or(v, new(big.Int).SetUint64(w.hi))
	v.Lsh(v, 64).Or(v, new(big.Int).SetUint64(w.lo))
	return v.String()
}

func checkBalanced(entries []entryRow) {
	type key struct {
		tenant, tx, asset string
		effect            Effect
	}
	type sides struct{ d, c wide }
	sums := make(map[key]*sides)
	order := make([]key, 0)
	for i := range entries {
		e := &entries[i]
		k := key{e.key.tenant, e.txID, e.asset, e.effect}
		s := sums[k]
		if s == nil {
			s = &sides{}
			sums[k] = s
			order = append(order, k)
		}
		switch e.side {
		case 'D':
			s.d.add(e.amount)
		case 'C':
			s.c.add(e.amount)
		default:
			panic(fmt.Sprintf("ledger: invariant: entry %d of account %s/%s has side %q", e.seq, e.key.tenant, e.key.id, e.side))
		}
	}
	for _, k := range order {
		if s := sums[k]; s.d != s.c {
			panic(fmt.Sprintf("ledger: invariant: transaction %s of tenant %q does not balance in %s (%s): debits %s, credits %s",
				k.tx, k.tenant, k.asset, k.effect, s.d, s.c))
		}
	}
}

func checkChains(b *batchState) {
	last := make(map[acctKey]acct)
	for i := range b.entries {
		e := &b.entries[i]
		prev, ok := last[e.key]
		if !ok {
			if prev, ok = b.locked[e.key]; !ok {
				panic(fmt.Sprintf("ledger: invariant: entry for account %s/%s, which the batch did not lock", e.key.tenant, e.key.id))
			}
		}
		if e.seq != prev.seq+1 {
			panic(fmt.Sprintf("ledger: invariant: account %s/%s: entry seq %d follows seq %d", e.key.tenant, e.key.id, e.seq, prev.seq))
		}
		if e.asset != prev.asset || e.amount.IsZero() {
			panic(fmt.Sprintf("ledger: invariant: account %s/%s seq %d: amount %s of %s on an account of %s",
				e.key.tenant, e.key.id, e.seq, e.amount, e.asset, prev.asset))
		}
		want := applyEffect(prev, e)
		if !sameBalances(want, e.after) {
			panic(fmt.Sprintf("ledger: invariant: account %s/%s seq %d: balance-after %s, previous plus its %s %c %s gives %s",
				e.key.tenant, e.key.id, e.seq, balances(e.after), e.effect, e.side, e.amount, balances(want)))
		}
		last[e.key] = want
	}
	for k, a := range b.accounts {
		want, ok := last[k]
		if !ok {
			want = b.locked[k]
		}
		if a.seq != want.seq || !sameBalances(*a, want) {
			panic(fmt.Sprintf("ledger: invariant: account %s/%s is written as seq %d %s, its chain ends at seq %d %s",
				k.tenant, k.id, a.seq, balances(*a), want.seq, balances(want)))
		}
	}
}

// applyEffect returns prev after entry e, as the verifier computes it
// (verify.deltas): posted adds to the posted column of e's side, hold adds
// to its pending column, release takes off its pending column.
func applyEffect(prev acct, e *entryRow) acct {
	next := prev
	next.seq = e.seq
	posted, pending := &next.dp, &next.dpend
	if e.side == 'C' {
		posted, pending = &next.cp, &next.cpend
	}
	ok := true
	switch e.effect {
	case EffectPosted:
		*posted, ok = posted.Add(e.amount)
	case EffectHold:
		*pending, ok = pending.Add(e.amount)
	case EffectRelease:
		*pending, ok = pending.Sub(e.amount)
	default:
		panic(fmt.Sprintf("ledger: invariant: account %s/%s seq %d: unknown effect %q", e.key.tenant, e.key.id, e.seq, e.effect))
	}
	if !ok {
		panic(fmt.Sprintf("ledger: invariant: account %s/%s seq %d: %s of %s leaves the range of a balance",
			e.key.tenant, e.key.id, e.seq, e.effect, e.amount))
	}
	return next
}

func sameBalances(a, b acct) bool {
	return a.dp == b.dp && a.cp == b.cp && a.dpend == b.dpend && a.cpend == b.cpend
}

func balances(a acct) string {
	return fmt.Sprintf("(debits_posted %s, credits_posted %s, debits_pending %s, credits_pending %s)", a.dp, a.cp, a.dpend, a.cpend)
}
