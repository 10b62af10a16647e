// Package verify checks the ledger's invariants against the database. It is
// used by tests after every randomized, concurrent and crash run, and by
// `bulwark ledger verify` in production.
//
// The invariants:
//  1. zero sum: for every tenant and asset, the posted and the pending
//     balances of all accounts sum to zero (credits equal debits);
//  2. balances equal history: each account's balances equal its archive
//     checkpoint (or zero) plus the effects of its entries after it;
//  3. contiguous chains: each account's entries carry seq checkpoint+1 ..
//     account.seq with no gap or repeat, and each entry's balance-after is
//     the previous one plus its own effect;
//  4. balanced transactions: within each transaction, debits equal credits
//     per asset and effect;
//  5. holds match pending transactions: each account's pending totals equal
//     the amounts of the pending transactions still in state pending.
//
// The checks are SQL over the whole ledger, so they run in seconds for
// millions of entries; they read one consistent snapshot.
package verify

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Violation is one broken invariant.
type Violation struct {
	Check  string `json:"check"`
	Detail string `json:"detail"`
}

// Report is the result of a run.
type Report struct {
	Accounts     int64       `json:"accounts"`
	Entries      int64       `json:"entries"`
	Transactions int64       `json:"transactions"`
	Violations   []Violation `json:"violations"`
}

// OK reports whether every invariant holds.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// String summarises the report.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d accounts, %d entries, %d transactions: ", r.Accounts, r.Entries, r.Transactions)
	if r.OK() {
		b.WriteString("all invariants hold")
		return b.String()
	}
	fmt.Fprintf(&b, "%d violations", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "\n  %s: %s", v.Check, v.Detail)
	}
	return b.String()
}

// maxViolations bounds the violations reported per check.
const maxViolations = 20

type check struct {
	name string
	sql  string
}

// deltas computes each entry's effect on the four balance columns.
const deltas = `
	CASE WHEN e.effect = 'posted' AND e.side = 'D' THEN e.amount ELSE 0 END AS d_dp,
	CASE WHEN e.effect = 'posted' AND e.side = 'C' THEN e.amount ELSE 0 END AS d_cp,
	CASE WHEN e.side = 'D' AND e.effect = 'hold' THEN e.amount WHEN e.side = 'D' AND e.effect = 'release' THEN -e.amount ELSE 0 END AS d_dpe,
	CASE WHEN e.side = 'C' AND e.effect = 'hold' THEN e.amount WHEN e.side = 'C' AND e.effect = 'release' THEN -e.amount ELSE 0 END AS d_cpe`

var checks = []check{
	{"zero_sum", `SELECT tenant_id || ' ' || asset || ': posted ' || sum(credits_posted - debits_posted) ||
			', pending ' || sum(credits_pending - debits_pending)
		FROM accounts GROUP BY tenant_id, asset
		HAVING sum(credits_posted - debits_posted) <> 0 OR sum(credits_pending - debits_pending) <> 0`},
	{"balance_equals_entries", `WITH d AS (SELECT e.tenant_id, e.account_id, ` + deltas + ` FROM entries e),
		s AS (SELECT tenant_id, account_id, sum(d_dp) dp, sum(d_cp) cp, sum(d_dpe) dpe, sum(d_cpe) cpe FROM d GROUP BY 1, 2)
		SELECT a.tenant_id || '/' || a.id || ': account ' || a.debits_posted || '/' || a.credits_posted || '/' ||
			a.debits_pending || '/' || a.credits_pending || ' vs entries ' ||
			(coalesce(c.debits_posted, 0) + coalesce(s.dp, 0)) || '/' || (coalesce(c.credits_posted, 0) + coalesce(s.cp, 0)) || '/' ||
			(coalesce(c.debits_pending, 0) + coalesce(s.dpe, 0)) || '/' || (coalesce(c.credits_pending, 0) + coalesce(s.cpe, 0))
		FROM accounts a
		LEFT JOIN s ON s.tenant_id = a.tenant_id AND s.account_id = a.id
		LEFT JOIN entry_archives c ON c.tenant_id = a.tenant_id AND c.account_id = a.id
		WHERE a.debits_posted <> coalesce(c.debits_posted, 0) + coalesce(s.dp, 0)
		   OR a.credits_posted <> coalesce(c.credits_posted, 0) + coalesce(s.cp, 0)
		   OR a.debits_pending <> coalesce(c.debits_pending, 0) + coalesce(s.dpe, 0)
		   OR a.credits_pending <> coalesce(c.credits_pending, 0) + coalesce(s.cpe, 0)`},
	{"contiguous_chain", `WITH s AS (SELECT tenant_id, account_id, count(*) n, min(seq) lo, max(seq) hi,
			count(DISTINCT seq) nd FROM entries GROUP BY 1, 2)
		SELECT a.tenant_id || '/' || a.id || ': seq ' || a.seq || ', checkpoint ' || coalesce(c.seq, 0) ||
			', entries ' || coalesce(s.n, 0) || ' (' || coalesce(s.lo, 0) || '..' || coalesce(s.hi, 0) || ')'
		FROM accounts a
		LEFT JOIN s ON s.tenant_id = a.tenant_id AND s.account_id = a.id
		LEFT JOIN entry_archives c ON c.tenant_id = a.tenant_id AND c.account_id = a.id
		WHERE coalesce(s.n, 0) <> a.seq - coalesce(c.seq, 0)
		   OR coalesce(s.nd, 0) <> coalesce(s.n, 0)
		   OR (s.n > 0 AND (s.lo <> coalesce(c.seq, 0) + 1 OR s.hi <> a.seq))`},
	{"chain_balances", `WITH d AS (SELECT e.tenant_id, e.account_id, e.seq, e.debits_posted, e.credits_posted,
			e.debits_pending, e.credits_pending, ` + deltas + ` FROM entries e),
		l AS (SELECT d.*, lag(debits_posted) OVER w pdp, lag(credits_posted) OVER w pcp,
			lag(debits_pending) OVER w pdpe, lag(credits_pending) OVER w pcpe
			FROM d WINDOW w AS (PARTITION BY tenant_id, account_id ORDER BY seq))
		SELECT l.tenant_id || '/' || l.account_id || ' seq ' || l.seq || ': balance after does not follow from the previous entry'
		FROM l LEFT JOIN entry_archives c ON c.tenant_id = l.tenant_id AND c.account_id = l.account_id
		WHERE l.debits_posted <> coalesce(l.pdp, c.debits_posted, 0) + l.d_dp
		   OR l.credits_posted <> coalesce(l.pcp, c.credits_posted, 0) + l.d_cp
		   OR l.debits_pending <> coalesce(l.pdpe, c.debits_pending, 0) + l.d_dpe
		   OR l.credits_pending <> coalesce(l.pcpe, c.credits_pending, 0) + l.d_cpe`},
	{"balanced_transactions", `SELECT tenant_id || ' ' || transaction_id || ' ' || asset || ' ' || effect ||
			': debits ' || sum(amount) FILTER (WHERE side = 'D') || ' credits ' || sum(amount) FILTER (WHERE side = 'C')
		FROM entries GROUP BY tenant_id, transaction_id, asset, effect
		HAVING coalesce(sum(amount) FILTER (WHERE side = 'D'), 0) <> coalesce(sum(amount) FILTER (WHERE side = 'C'), 0)`},
	{"holds_match_pending", `WITH p AS (SELECT t.tenant_id, x.source, x.destination, x.amount::numeric AS amount
			FROM transactions t, jsonb_to_recordset(t.postings) AS x(source text, destination text, amount text)
			WHERE t.state = 'pending'),
		h AS (SELECT tenant_id, acct, sum(dpe) dpe, sum(cpe) cpe FROM (
			SELECT tenant_id, source acct, amount dpe, 0 cpe FROM p
			UNION ALL SELECT tenant_id, destination, 0, amount FROM p) u GROUP BY 1, 2)
		SELECT a.tenant_id || '/' || a.id || ': pending ' || a.debits_pending || '/' || a.credits_pending ||
			' vs open pending transactions ' || coalesce(h.dpe, 0) || '/' || coalesce(h.cpe, 0)
		FROM accounts a LEFT JOIN h ON h.tenant_id = a.tenant_id AND h.acct = a.id
		WHERE a.debits_pending <> coalesce(h.dpe, 0) OR a.credits_pending <> coalesce(h.cpe, 0)`},
}

// Run checks every invariant in one repeatable-read snapshot.
func Run(ctx context.Context, pool *pgxpool.Pool) (*Report, error) {
	rep := &Report{Violations: []Violation{}}
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM entries),
				(SELECT count(*) FROM transactions)`).Scan(&rep.Accounts, &rep.Entries, &rep.Transactions); err != nil {
				return err
			}
			for _, c := range checks {
				rows, err := tx.Query(ctx, c.sql+fmt.Sprintf(" LIMIT %d", maxViolations))
				if err != nil {
					return fmt.Errorf("check %s: %w", c.name, err)
				}
				details, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					return fmt.Errorf("check %s: %w", c.name, err)
				}
				for _, d := range details {
					rep.Violations = append(rep.Violations, Violation{Check: c.name, Detail: d})
				}
			}
			return nil
		})
	return rep, err
}
