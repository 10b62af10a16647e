package ledger

import (
	"encoding/json"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

// This file applies a batch in memory, after its rows are locked: every
// rule is checked in arrival order on the locked balances, and the writes
// are collected for one bulk statement each. Nothing here does I/O.

// item is one transaction in flight through the pipeline.
type item struct {
	in     *TxInput
	digest [32]byte
	id     string // pre-assigned id, kept across retries of the batch
	// postings is the JSON of in.Postings, encoded by the submitting
	// goroutine so that the committer, which holds row locks, does not.
	postings string
	res      Result
}

// request is one Submit call: the transactions of one HTTP request.
type request struct {
	tenant    string
	items     []item
	journalID string // set when the request comes from the async journal
	// journalDone is set when the journal row was already finished by an
	// earlier attempt (another process); results then come from outcome.
	journalDone bool
	done        chan struct{}
	err         error
	// span is the submitter's span, set only when the pipeline traces: the
	// batch links to it and adds its "ledger.batch" event to it.
	span trace.Span
}

type acctKey struct{ tenant, id string }

type acct struct {
	asset, rule          string
	seq                  int64
	dp, cp, dpend, cpend amount.Uint128
	dirty                bool
}

// pendingTx is what post/void needs of a pending transaction.
type pendingTx struct {
	postings  []Posting
	state     State
	expiresAt *time.Time
	changed   bool
	created   bool // created by this batch: its row is inserted, not updated
}

type entryRow struct {
	key     acctKey
	seq     int64
	txID    string
	posting int
	side    byte
	effect  Effect
	amount  amount.Uint128
	asset   string
	after   acct
}

type txRow struct {
	tenant   string
	tx       *Transaction
	digest   [32]byte
	postings string // JSON of tx.Postings when known before apply, else ""
}

// batchState is one attempt at applying a batch.
type batchState struct {
	now      time.Time
	accounts map[acctKey]*acct
	pending  map[acctKey]*pendingTx // keyed by (tenant, transaction id)
	existing map[acctKey]*existingTx
	inBatch  map[acctKey]*item // committed earlier in this batch, by (tenant, key)

	entries []entryRow
	txs     []txRow
	undo    []undoRec
	// locked is the accounts as locked, before this attempt changed them;
	// only built with bulwark_invariants (see invariants_on.go).
	locked map[acctKey]acct
}

type existingTx struct {
	digest [32]byte
	tx     Transaction
}

type undoRec struct {
	acct    *acct
	saved   acct
	pend    *pendingTx
	pSave   pendingTx
	created *acctKey // a pending transaction created by the rolled-back unit
}

func (b *batchState) touch(a *acct) {
	b.undo = append(b.undo, undoRec{acct: a, saved: *a})
	a.dirty = true
}

func (b *batchState) touchPending(p *pendingTx) {
	b.undo = append(b.undo, undoRec{pend: p, pSave: *p})
	p.changed = true
}

type mark struct{ entries, txs, undo int }

func (b *batchState) mark() mark { return mark{len(b.entries), len(b.txs), len(b.undo)} }

func (b *batchState) rollback(m mark) {
	for i := len(b.undo) - 1; i >= m.undo; i-- {
		u := b.undo[i]
		switch {
		case u.acct != nil:
			*u.acct = u.saved
		case u.pend != nil:
			*u.pend = u.pSave
		default:
			delete(b.pending, *u.created)
		}
	}
	b.undo, b.entries, b.txs = b.undo[:m.undo], b.entries[:m.entries], b.txs[:m.txs]
}

// applyRequest applies the units of one request in arrival order. A unit is
// an ungrouped transaction or all transactions sharing a group; a unit
// commits whole or not at all.
func (b *batchState) applyRequest(r *request) {
	done := make([]bool, len(r.items))
	for i := range r.items {
		if done[i] {
			continue
		}
		unit := []int{i}
		if g := r.items[i].in.Group; g != "" {
			for j := i + 1; j < len(r.items); j++ {
				if r.items[j].in.Group == g {
					unit = append(unit, j)
				}
			}
		}
		for _, j := range unit {
			done[j] = true
		}
		b.applyUnit(r, unit)
	}
}

func (b *batchState) applyUnit(r *request, unit []int) {
	m := b.mark()
	inBatchMark := make([]acctKey, 0, len(unit))
	for _, j := range unit {
		it := &r.items[j]
		it.res = Result{}
		if err := b.applyItem(r.tenant, it); err != nil {
			b.rollback(m)
			for _, k := range inBatchMark {
				delete(b.inBatch, k)
			}
			for _, k := range unit {
				r.items[k].res = Result{Err: &Error{Code: CodeLinkedFailed, Index: k,
					Detail: fmt.Sprintf("transaction %d of group %q failed", j, it.in.Group)}}
			}
			err.Index = j
			it.res = Result{Err: err}
			return
		}
		if !it.res.Replayed {
			k := acctKey{r.tenant, it.in.IdempotencyKey}
			b.inBatch[k] = it
			inBatchMark = append(inBatchMark, k)
		}
	}
}

func (b *batchState) applyItem(tenant string, it *item) *Error {
	key := acctKey{tenant, it.in.IdempotencyKey}
	if ex, ok := b.existing[key]; ok {
		if ex.digest != it.digest {
			return reject(CodeIdempotencyConflict, "idempotency key %q was used for a different transaction", it.in.IdempotencyKey)
		}
		tx := ex.tx
		it.res = Result{Transaction: &tx, Replayed: true}
		return nil
	}
	if first, ok := b.inBatch[key]; ok {
		if first.digest != it.digest {
			return reject(CodeIdempotencyConflict, "idempotency key %q was used for a different transaction", it.in.IdempotencyKey)
		}
		it.res = Result{Transaction: first.res.Transaction, Replayed: true}
		return nil
	}
	tx := &Transaction{ID: it.id, IdempotencyKey: it.in.IdempotencyKey, Kind: it.in.Type,
		Metadata: it.in.Metadata, CreatedAt: b.now}
	var err *Error
	switch it.in.Type {
	case KindPosted, KindPending:
		err = b.applyPostings(tenant, it, tx)
	default:
		err = b.applyResolve(tenant, it, tx)
	}
	if err != nil {
		return err
	}
	row := txRow{tenant: tenant, tx: tx, digest: it.digest}
	if it.in.Type == KindPosted || it.in.Type == KindPending {
		row.postings = it.postings // tx.Postings are the input's
	}
	b.txs = append(b.txs, row)
	it.res = Result{Transaction: tx}
	return nil
}

func (b *batchState) applyPostings(tenant string, it *item, tx *Transaction) *Error {
	tx.State, tx.Postings = StatePosted, it.in.Postings
	effect := EffectPosted
	if it.in.Type == KindPending {
		tx.State, effect = StatePending, EffectHold
		if it.in.TimeoutSeconds > 0 {
			exp := b.now.Add(time.Duration(it.in.TimeoutSeconds) * time.Second)
			tx.ExpiresAt = &exp
		}
		k := acctKey{tenant, tx.ID}
		b.pending[k] = &pendingTx{postings: tx.Postings, state: StatePending, expiresAt: tx.ExpiresAt, created: true}
		b.undo = append(b.undo, undoRec{created: &k})
	}
	for i, p := range it.in.Postings {
		if err := b.move(tenant, tx.ID, i, p, effect, p.Amount); err != nil {
			return err
		}
	}
	return b.checkRules(tenant, it.in.Postings)
}

// applyResolve posts, voids or expires a pending transaction.
func (b *batchState) applyResolve(tenant string, it *item, tx *Transaction) *Error {
	p, ok := b.pending[acctKey{tenant, it.in.PendingID}]
	if !ok {
		return reject(CodePendingNotFound, "no pending transaction %s", it.in.PendingID)
	}
	switch p.state {
	case StatePosted:
		return reject(CodePendingPosted, "pending transaction %s is already posted", it.in.PendingID)
	case StateVoided:
		return reject(CodePendingVoided, "pending transaction %s is already voided", it.in.PendingID)
	case StateExpired:
		return reject(CodePendingExpired, "pending transaction %s has expired", it.in.PendingID)
	}
	expired := p.expiresAt != nil && !b.now.Before(*p.expiresAt)
	if expired != (it.in.Type == KindExpirePending) {
		if expired {
			return reject(CodePendingExpired, "pending transaction %s expired at %s", it.in.PendingID, p.expiresAt.Format(time.RFC3339Nano))
		}
		return reject(CodeInvalid, "pending transaction %s has not expired", it.in.PendingID)
	}
	post := append([]Posting(nil), p.postings...)
	if it.in.Amount != nil {
		if len(post) != 1 {
			return reject(CodeInvalid, "a partial post needs a single-posting pending transaction; omit amount to post in full")
		}
		if p.postings[0].Amount.Less(*it.in.Amount) {
			return reject(CodePostExceedsPending, "amount %s exceeds the pending %s", it.in.Amount, p.postings[0].Amount)
		}
		post[0].Amount = *it.in.Amount
	}
	for i, pp := range p.postings {
		if err := b.move(tenant, tx.ID, i, pp, EffectRelease, pp.Amount); err != nil {
			return err
		}
	}
	tx.PendingID, tx.State = it.in.PendingID, StatePosted
	b.touchPending(p)
	switch it.in.Type {
	case KindPostPending:
		for i, pp := range post {
			if err := b.move(tenant, tx.ID, i, pp, EffectPosted, pp.Amount); err != nil {
				return err
			}
		}
		tx.Postings, p.state = post, StatePosted
	case KindVoidPending:
		tx.Postings, p.state = []Posting{}, StateVoided
	case KindExpirePending:
		tx.Postings, p.state = []Posting{}, StateExpired
	}
	return b.checkRules(tenant, p.postings)
}

// move applies one posting's effect to its two accounts and appends the two
// entries of the chain.
func (b *batchState) move(tenant, txID string, i int, p Posting, effect Effect, amt amount.Uint128) *Error {
	src, dst := b.accounts[acctKey{tenant, p.Source}], b.accounts[acctKey{tenant, p.Destination}]
	if src == nil || dst == nil {
		missing := p.Source
		if src != nil {
			missing = p.Destination
		}
		return reject(CodeAccountNotFound, "posting %d: no account %q", i, missing)
	}
	if src.asset != p.Asset || dst.asset != p.Asset {
		return reject(CodeAssetMismatch, "posting %d: asset %s, but %s holds %s and %s holds %s",
			i, p.Asset, p.Source, src.asset, p.Destination, dst.asset)
	}
	b.touch(src)
	b.touch(dst)
	var ok1, ok2 bool
	switch effect {
	case EffectPosted:
		src.dp, ok1 = src.dp.Add(amt)
		dst.cp, ok2 = dst.cp.Add(amt)
	case EffectHold:
		src.dpend, ok1 = src.dpend.Add(amt)
		dst.cpend, ok2 = dst.cpend.Add(amt)
	case EffectRelease:
		src.dpend, ok1 = src.dpend.Sub(amt)
		dst.cpend, ok2 = dst.cpend.Sub(amt)
		if !ok1 || !ok2 {
			panic(fmt.Sprintf("ledger: release of %s below zero pending on %s/%s", amt, p.Source, p.Destination))
		}
	}
	if !ok1 || !ok2 {
		return reject(CodeOverflow, "posting %d: a balance would exceed 2^128-1", i)
	}
	src.seq++
	dst.seq++
	b.entries = append(b.entries,
		entryRow{key: acctKey{tenant, p.Source}, seq: src.seq, txID: txID, posting: i, side: 'D', effect: effect, amount: amt, asset: p.Asset, after: *src},
		entryRow{key: acctKey{tenant, p.Destination}, seq: dst.seq, txID: txID, posting: i, side: 'C', effect: effect, amount: amt, asset: p.Asset, after: *dst})
	return nil
}

// checkRules enforces balance rules on the accounts a transaction touched,
// after the whole transaction (so a transaction may move funds in and out of
// an account within itself).
func (b *batchState) checkRules(tenant string, ps []Posting) *Error {
	for _, p := range ps {
		for _, id := range [2]string{p.Source, p.Destination} {
			a := b.accounts[acctKey{tenant, id}]
			switch a.rule {
			case RuleDebitsMustNotExceedCredits:
				if d, ok := a.dp.Add(a.dpend); !ok || a.cp.Less(d) {
					return reject(CodeInsufficientFunds, "account %q: debits would exceed credits", id)
				}
			case RuleCreditsMustNotExceedDebits:
				if c, ok := a.cp.Add(a.cpend); !ok || a.dp.Less(c) {
					return reject(CodeExceedsDebits, "account %q: credits would exceed debits", id)
				}
			}
		}
	}
	return nil
}

func postingsJSON(ps []Posting) []byte {
	b, err := json.Marshal(ps)
	if err != nil {
		panic(fmt.Sprintf("ledger: marshal postings: %v", err))
	}
	return b
}
