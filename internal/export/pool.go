package export

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// OpenPool opens a dedicated, bounded pool for export workers: maxConns
// connections (a worker uses at most two at once: its chunk read and its
// heartbeat), every statement under statementTimeout, so an export can
// neither take the connections the ledger needs nor hold one forever.
func OpenPool(ctx context.Context, url string, maxConns int32, statementTimeout time.Duration) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("export pool: %w", err)
	}
	cfg.MaxConns = maxConns
	rp := cfg.ConnConfig.RuntimeParams
	rp["statement_timeout"] = strconv.FormatInt(statementTimeout.Milliseconds(), 10)
	rp["application_name"] = "bulwark-export"
	// Plans for the values at hand: the chunk query's optional account
	// filter and keyset bounds plan well only with their constants.
	rp["plan_cache_mode"] = "force_custom_plan"
	// Idle in transaction cannot happen (no explicit transactions span
	// waits), but bound it anyway.
	rp["idle_in_transaction_session_timeout"] = "60000"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("export pool: %w", err)
	}
	return pool, nil
}
