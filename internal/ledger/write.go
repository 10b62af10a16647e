package ledger

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

// queueWrites queues every write of the batch: bulk inserts of
// transactions and entries, one update per touched account, pending state
// changes and journal outcomes.
func (b *batchState) queueWrites(batch *pgx.Batch, reqs []*request) error {
	b.queueTransactions(batch)
	b.queueEntries(batch)
	b.queueAccounts(batch)
	b.queuePendingStates(batch)
	return queueJournal(batch, reqs)
}

func (b *batchState) queueTransactions(batch *pgx.Batch) {
	n := len(b.txs)
	if n == 0 {
		return
	}
	tenants, ids, keys, kinds, states := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	digests, postings, metas := make([][]byte, n), make([]string, n), make([]string, n)
	pendingIDs := make([]*string, n)
	expires := make([]*time.Time, n)
	for i, r := range b.txs {
		t := r.tx
		if p := b.pending[acctKey{r.tenant, t.ID}]; p != nil && t.Kind == KindPending {
			t.State = p.state // created and resolved within this batch
		}
		tenants[i], ids[i], keys[i], kinds[i], states[i] = r.tenant, t.ID, t.IdempotencyKey, string(t.Kind), string(t.State)
		d := r.digest
		digests[i] = d[:]
		postings[i], metas[i] = r.postings, string(t.Metadata)
		if postings[i] == "" {
			postings[i] = string(postingsJSON(t.Postings))
		}
		if t.PendingID != "" {
			pendingIDs[i] = &t.PendingID
		}
		expires[i] = t.ExpiresAt
	}
	batch.Queue(`INSERT INTO transactions (tenant_id, id, idempotency_key, request_digest, kind, state,
			pending_id, expires_at, postings, metadata, created_at)
		SELECT t, id, key, digest, kind, state, pid, exp, p, m, $11
		FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bytea[], $5::text[], $6::text[],
			$7::uuid[], $8::timestamptz[], $9::jsonb[], $10::jsonb[]) AS u(t, id, key, digest, kind, state, pid, exp, p, m)`,
		tenants, ids, keys, digests, kinds, states, pendingIDs, expires, postings, metas, b.now)
}

func (b *batchState) queueEntries(batch *pgx.Batch) {
	n := len(b.entries)
	if n == 0 {
		return
	}
	tenants, accts, txIDs, sides, effects, assets := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seqs, postings := make([]int64, n), make([]int32, n)
	for i, e := range b.entries {
		tenants[i], accts[i], txIDs[i], sides[i], effects[i], assets[i] = e.key.tenant, e.key.id, e.txID, string(e.side), string(e.effect), e.asset
		seqs[i], postings[i] = e.seq, int32(e.posting)
	}
	// Amounts and balances travel as bigint arrays when every one of the
	// batch fits (the common case: binary, no numeric parsing on the
	// server), else as decimal text.
	var nums [5]any
	if b.entriesFitInt64() {
		var v [5][]int64
		for k := range v {
			v[k] = make([]int64, n)
		}
		for i, e := range b.entries {
			v[0][i], v[1][i], v[2][i] = int64(e.amount.Lo), int64(e.after.dp.Lo), int64(e.after.cp.Lo)
			v[3][i], v[4][i] = int64(e.after.dpend.Lo), int64(e.after.cpend.Lo)
		}
		for k := range v {
			nums[k] = v[k]
		}
	} else {
		var v [5][]string
		for k := range v {
			v[k] = make([]string, n)
		}
		for i, e := range b.entries {
			v[0][i], v[1][i], v[2][i] = e.amount.String(), e.after.dp.String(), e.after.cp.String()
			v[3][i], v[4][i] = e.after.dpend.String(), e.after.cpend.String()
		}
		for k := range v {
			nums[k] = v[k]
		}
	}
	typ := "numeric[]"
	if _, small := nums[0].([]int64); small {
		typ = "bigint[]"
	}
	batch.Queue(`INSERT INTO entries (tenant_id, account_id, seq, transaction_id, posting, side, effect, amount, asset,
			debits_posted, credits_posted, debits_pending, credits_pending, created_at)
		SELECT t, a, s, tx, p, sd, ef, am, asset, dp, cp, dpe, cpe, $14
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::uuid[], $5::int[], $6::text[], $7::text[],
			$8::`+typ+`, $9::text[], $10::`+typ+`, $11::`+typ+`, $12::`+typ+`, $13::`+typ+`)
			AS u(t, a, s, tx, p, sd, ef, am, asset, dp, cp, dpe, cpe)`,
		tenants, accts, seqs, txIDs, postings, sides, effects, nums[0], assets, nums[1], nums[2], nums[3], nums[4], b.now)
}

// entriesFitInt64 reports whether every amount and balance of the batch's
// entries fits in an int64.
func (b *batchState) entriesFitInt64() bool {
	fits := func(u amount.Uint128) bool { return u.Hi == 0 && u.Lo <= math.MaxInt64 }
	for i := range b.entries {
		e := &b.entries[i]
		if !fits(e.amount) || !fits(e.after.dp) || !fits(e.after.cp) || !fits(e.after.dpend) || !fits(e.after.cpend) {
			return false
		}
	}
	return true
}

func (b *batchState) queueAccounts(batch *pgx.Batch) {
	var tenants, ids, dps, cps, dpends, cpends []string
	var seqs []int64
	for k, a := range b.accounts {
		if !a.dirty {
			continue
		}
		tenants, ids, seqs = append(tenants, k.tenant), append(ids, k.id), append(seqs, a.seq)
		dps, cps = append(dps, a.dp.String()), append(cps, a.cp.String())
		dpends, cpends = append(dpends, a.dpend.String()), append(cpends, a.cpend.String())
	}
	if len(ids) == 0 {
		return
	}
	batch.Queue(`UPDATE accounts a SET seq = u.s, debits_posted = u.dp, credits_posted = u.cp,
			debits_pending = u.dpe, credits_pending = u.cpe, updated_at = $8
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::numeric[], $5::numeric[], $6::numeric[], $7::numeric[])
			AS u(t, id, s, dp, cp, dpe, cpe)
		WHERE a.tenant_id = u.t AND a.id = u.id`, tenants, ids, seqs, dps, cps, dpends, cpends, b.now)
}

func (b *batchState) queuePendingStates(batch *pgx.Batch) {
	var tenants, ids, states []string
	for k, p := range b.pending {
		if p.changed && !p.created {
			tenants, ids, states = append(tenants, k.tenant), append(ids, k.id), append(states, string(p.state))
		}
	}
	if len(ids) == 0 {
		return
	}
	batch.Queue(`UPDATE transactions t SET state = u.state
		FROM unnest($1::text[], $2::uuid[], $3::text[]) AS u(tn, id, state)
		WHERE t.tenant_id = u.tn AND t.id = u.id`, tenants, ids, states)
}

// queueJournal records the outcome of journal-driven requests in the same
// transaction as their effects: exactly-once by construction.
func queueJournal(batch *pgx.Batch, reqs []*request) error {
	var tenants, ids, states, outcomes []string
	for _, r := range reqs {
		if r.journalID == "" || r.journalDone {
			continue
		}
		res := make([]Result, len(r.items))
		state := JournalRejected
		for i := range r.items {
			res[i] = r.items[i].res
			if res[i].Err == nil {
				state = JournalApplied
			}
		}
		out, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("journal %s: marshal outcome: %w", r.journalID, err)
		}
		tenants, ids, states, outcomes = append(tenants, r.tenant), append(ids, r.journalID), append(states, string(state)), append(outcomes, string(out))
	}
	if len(ids) == 0 {
		return nil
	}
	batch.Queue(`UPDATE journal j SET state = u.state, outcome = u.outcome, finished_at = now(), attempts = attempts + 1
		FROM unnest($1::text[], $2::uuid[], $3::text[], $4::jsonb[]) AS u(t, id, state, outcome)
		WHERE j.tenant_id = u.t AND j.id = u.id`, tenants, ids, states, outcomes)
	return nil
}
