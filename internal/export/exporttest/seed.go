// Package exporttest seeds a ledger directly in SQL for export tests and
// the export benchmark: millions of rows in seconds, where the commit
// pipeline would take minutes. The rows are what the ledger would write:
// balanced two-posting transactions, and per account a contiguous entry
// chain whose balances after each entry are the running sums.
package exporttest

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Base is the created_at of the first seeded transaction; transaction k
// is created at Base + k ms.
var Base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Seed creates tenant with accounts accounts and txs transactions (2·txs
// entries), transaction k (1..txs) from account k mod accounts to another
// one. Ids are deterministic, so two seeds of the same size export to the
// same bytes. Every 97th transaction carries metadata and a key with a
// comma, a quote and a newline, to exercise quoting.
func Seed(ctx context.Context, pool *pgxpool.Pool, tenant string, accounts, txs int) error {
	if accounts < 2 {
		return fmt.Errorf("seed: need 2 accounts or more, got %d", accounts)
	}
	one := []any{tenant}
	// CREATE TABLE AS takes no parameters: the numbers are formatted in.
	txTable := fmt.Sprintf(`CREATE TEMP TABLE seed_tx ON COMMIT DROP AS
			SELECT k, 'acct-' || lpad((k %% %[1]d)::text, 6, '0') AS src,
				'acct-' || lpad(((k %% %[1]d + 1 + (k / %[1]d) %% (%[1]d - 1)) %% %[1]d)::text, 6, '0') AS dst,
				(k %% 1000 + 1)::numeric AS amt, '%[3]s'::timestamptz + k * interval '1 millisecond' AS ts,
				lpad(to_hex(k), 32, '0')::uuid AS id
			FROM generate_series(1, %[2]d::bigint) k`, accounts, txs, Base.Format(time.RFC3339))
	stmts := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING`, one},
		{`INSERT INTO accounts (tenant_id, id, asset, scale, rule, metadata, created_at)
			SELECT $1, 'acct-' || lpad(i::text, 6, '0'), 'USD', 2, 'none',
				CASE WHEN i % 7 = 0 THEN jsonb_build_object('team', 'a,b "c"') ELSE '{}' END, $3::timestamptz
			FROM generate_series(0, $2 - 1) i`, []any{tenant, accounts, Base}},
		{txTable, nil},
		{`INSERT INTO transactions (tenant_id, id, idempotency_key, request_digest, kind, state, postings, metadata, created_at)
			SELECT $1, id, CASE WHEN k % 97 = 0 THEN 'key,"' || k || '"' || chr(10) ELSE 'key-' || k END, '\x00'::bytea,
				'posted', 'posted',
				jsonb_build_array(jsonb_build_object('source', src, 'destination', dst, 'amount', amt::text, 'asset', 'USD')),
				CASE WHEN k % 97 = 0 THEN jsonb_build_object('note', 'x,"y"' || chr(10) || 'z') ELSE '{}' END, ts
			FROM seed_tx`, one},
		{`INSERT INTO entries (tenant_id, account_id, seq, transaction_id, posting, side, effect, amount, asset,
				debits_posted, credits_posted, debits_pending, credits_pending, created_at)
			SELECT $1, acct, row_number() OVER w, id, 0, side, 'posted', amt, 'USD',
				sum(CASE WHEN side = 'D' THEN amt ELSE 0 END) OVER w, sum(CASE WHEN side = 'C' THEN amt ELSE 0 END) OVER w,
				0, 0, ts
			FROM (SELECT k, id, src AS acct, 'D' AS side, amt, ts FROM seed_tx
				UNION ALL SELECT k, id, dst, 'C', amt, ts FROM seed_tx) x
			WINDOW w AS (PARTITION BY acct ORDER BY k ROWS UNBOUNDED PRECEDING)`, one},
		{`UPDATE accounts a SET seq = e.seq, debits_posted = e.dp, credits_posted = e.cp
			FROM (SELECT DISTINCT ON (account_id) account_id, seq, debits_posted dp, credits_posted cp
				FROM entries WHERE tenant_id = $1 ORDER BY account_id, seq DESC) e
			WHERE a.tenant_id = $1 AND a.id = e.account_id`, one},
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }() // after Commit it is a no-op
	for i, s := range stmts {
		if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("seed step %d: %w", i, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	_, err = pool.Exec(ctx, `ANALYZE accounts, transactions, entries`)
	return err
}
