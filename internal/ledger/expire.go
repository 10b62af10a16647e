package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Expirer voids pending transactions whose timeout has passed, through the
// pipeline (kind expire_pending), so expiry follows the same locking and
// chain rules as every other change. Its idempotency key is derived from
// the pending id, so several processes expiring the same one write it once.
type Expirer struct {
	pool     *pgxpool.Pool
	pipe     *Pipeline
	log      *slog.Logger
	interval time.Duration
}

// expireBatch bounds the pending transactions expired per round.
const expireBatch = 1000

// NewExpirer returns an expirer polling every interval (zero: 1 s).
func NewExpirer(pool *pgxpool.Pool, pipe *Pipeline, log *slog.Logger, interval time.Duration) *Expirer {
	if interval <= 0 {
		interval = time.Second
	}
	return &Expirer{pool: pool, pipe: pipe, log: log, interval: interval}
}

// Run expires until ctx ends.
func (e *Expirer) Run(ctx context.Context) error {
	t := time.NewTicker(e.interval)
	defer t.Stop()
	for {
		if _, err := e.ExpireOnce(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("expire pending transactions", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ExpireOnce expires one round of timed-out pending transactions and
// returns how many it expired.
func (e *Expirer) ExpireOnce(ctx context.Context) (int, error) {
	rows, err := e.pool.Query(ctx, `SELECT tenant_id, id::text FROM transactions
		WHERE state = 'pending' AND expires_at <= now() ORDER BY expires_at LIMIT $1`, expireBatch)
	if err != nil {
		return 0, err
	}
	type ref struct{ tenant, id string }
	refs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ref, error) {
		var r ref
		return r, row.Scan(&r.tenant, &r.id)
	})
	if err != nil || len(refs) == 0 {
		return 0, err
	}
	byTenant := map[string][]string{}
	for _, r := range refs {
		byTenant[r.tenant] = append(byTenant[r.tenant], r.id)
	}
	n := 0
	for tenant, ids := range byTenant {
		b, bad := newExpiry(ids)
		if bad != nil {
			return n, fmt.Errorf("expire pending transactions of %s: %w", tenant, bad)
		}
		res, err := e.pipe.Submit(ctx, tenant, b)
		if err != nil {
			return n, err
		}
		for _, r := range res {
			if r.Err == nil && !r.Replayed {
				n++
			}
		}
	}
	return n, nil
}

// newExpiry returns the batch that expires the pending transactions ids,
// validated like any other: expire_pending is the one kind a client cannot
// send (see origin). The key is derived from the pending id, so processes
// racing to expire one write it once.
func newExpiry(ids []string) (Batch, *Error) {
	txs := make([]TxInput, len(ids))
	for i, id := range ids {
		txs[i] = TxInput{IdempotencyKey: "expire:" + id, Type: KindExpirePending, PendingID: id}
	}
	if err := validateBatch(txs, fromExpirer); err != nil {
		return Batch{}, err
	}
	return prepare(txs), nil
}
