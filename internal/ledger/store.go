package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

// Store serves the reads of the ledger and account creation. Every query is
// scoped by tenant.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a store on pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// txColumns are the columns txScanDest scans, prefixed with alias t.
const txColumns = `t.id::text, t.idempotency_key, t.kind, t.state, coalesce(t.pending_id::text, ''), t.expires_at,
	t.postings, t.metadata, t.created_at`

func txScanDest(t *Transaction) []any {
	t.Postings = nil
	return []any{&t.ID, &t.IdempotencyKey, &t.Kind, &t.State, &t.PendingID, &t.ExpiresAt,
		(*rawPostings)(&t.Postings), (*json.RawMessage)(&t.Metadata), &t.CreatedAt}
}

// rawPostings scans a jsonb postings array.
type rawPostings []Posting

func (r *rawPostings) ScanText(v []byte) error { return json.Unmarshal(v, (*[]Posting)(r)) }

// Scan implements sql.Scanner for pgx's jsonb decoding.
func (r *rawPostings) Scan(src any) error {
	switch v := src.(type) {
	case []byte:
		return json.Unmarshal(v, (*[]Posting)(r))
	case string:
		return json.Unmarshal([]byte(v), (*[]Posting)(r))
	}
	return fmt.Errorf("postings: unexpected %T", src)
}

func finishScan(t *Transaction) {
	if t.Postings == nil {
		t.Postings = []Posting{}
	}
}

// CreateAccount creates an account. Creating an identical account again is
// a no-op that returns the existing one (created=false); a different
// account under the same id is CodeAccountExists.
func (s *Store) CreateAccount(ctx context.Context, tenant string, in AccountInput) (acc Account, created bool, err error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO accounts (tenant_id, id, asset, scale, rule, metadata)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, tenant, in.ID, in.Asset, in.Scale, in.Rule, string(in.Metadata))
	if err != nil {
		return Account{}, false, fmt.Errorf("create account: %w", err)
	}
	acc, err = s.Account(ctx, tenant, in.ID)
	if err != nil {
		return Account{}, false, err
	}
	if tag.RowsAffected() == 0 {
		same := acc.Asset == in.Asset && acc.Scale == in.Scale && acc.Rule == in.Rule && jsonEqual(acc.Metadata, in.Metadata)
		if !same {
			return acc, false, reject(CodeAccountExists, "account %q exists with different attributes", in.ID)
		}
	}
	return acc, tag.RowsAffected() == 1, nil
}

// CreateAccounts creates many accounts in one statement (used by load
// tools and imports); existing identical ones are left as they are.
func (s *Store) CreateAccounts(ctx context.Context, tenant string, ins []AccountInput) error {
	rows := make([][]any, len(ins))
	for i, in := range ins {
		rows[i] = []any{tenant, in.ID, in.Asset, int16(in.Scale), in.Rule, string(in.Metadata)}
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"accounts"},
		[]string{"tenant_id", "id", "asset", "scale", "rule", "metadata"}, pgx.CopyFromRows(rows))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return reject(CodeAccountExists, "an account of the batch exists already")
	}
	return err
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// Account reads an account with its balances.
func (s *Store) Account(ctx context.Context, tenant, id string) (Account, error) {
	var a Account
	if !accountIDPattern.MatchString(id) {
		// Also keeps bytes PostgreSQL text refuses (NUL, invalid UTF-8)
		// out of the query.
		return a, reject(CodeInvalidAccount, "%q is not an account id", id)
	}
	err := s.pool.QueryRow(ctx, `SELECT id, asset, scale, rule, metadata, created_at, seq,
			debits_posted, credits_posted, debits_pending, credits_pending
		FROM accounts WHERE tenant_id = $1 AND id = $2`, tenant, id).Scan(&a.ID, &a.Asset, &a.Scale, &a.Rule,
		(*json.RawMessage)(&a.Metadata), &a.CreatedAt, &a.Seq, &a.DebitsPosted, &a.CreditsPosted, &a.DebitsPending, &a.CreditsPending)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, reject(CodeAccountNotFound, "no account %q", id)
	}
	if err != nil {
		return a, fmt.Errorf("read account: %w", err)
	}
	a.fill()
	return a, nil
}

func (a *Account) fill() {
	a.Posted = amount.Net(a.CreditsPosted, a.DebitsPosted)
	held, ok := a.DebitsPosted.Add(a.DebitsPending)
	if !ok {
		held = amount.Max()
	}
	a.Available = amount.Net(a.CreditsPosted, held)
}

// BalanceAt is an account's balances as of a time: those after its last
// entry at or before at.
type BalanceAt struct {
	AccountID      string         `json:"account_id"`
	At             time.Time      `json:"at"`
	Seq            int64          `json:"seq"`
	DebitsPosted   amount.Uint128 `json:"debits_posted"`
	CreditsPosted  amount.Uint128 `json:"credits_posted"`
	DebitsPending  amount.Uint128 `json:"debits_pending"`
	CreditsPending amount.Uint128 `json:"credits_pending"`
	Posted         string         `json:"posted"`
}

// BalanceAt answers from the chain: the newest entry at or before at, or the
// archive checkpoint when archiving removed that entry.
func (s *Store) BalanceAt(ctx context.Context, tenant, id string, at time.Time) (BalanceAt, error) {
	if _, err := s.Account(ctx, tenant, id); err != nil {
		return BalanceAt{}, err
	}
	b := BalanceAt{AccountID: id, At: at}
	err := s.pool.QueryRow(ctx, `SELECT seq, debits_posted, credits_posted, debits_pending, credits_pending
		FROM entries WHERE tenant_id = $1 AND account_id = $2 AND created_at <= $3
		ORDER BY seq DESC LIMIT 1`, tenant, id, at).Scan(&b.Seq, &b.DebitsPosted, &b.CreditsPosted, &b.DebitsPending, &b.CreditsPending)
	if errors.Is(err, pgx.ErrNoRows) {
		b, err = s.balanceFromArchive(ctx, tenant, id, at, b)
	}
	if err != nil {
		return b, fmt.Errorf("balance at: %w", err)
	}
	b.Posted = amount.Net(b.CreditsPosted, b.DebitsPosted)
	return b, nil
}

// balanceFromArchive answers an as-of read whose entries were archived:
// exact when at is on or after the last archived entry, otherwise the
// history is only in the archive file and the read says so.
func (s *Store) balanceFromArchive(ctx context.Context, tenant, id string, at time.Time, b BalanceAt) (BalanceAt, error) {
	var last, before time.Time
	err := s.pool.QueryRow(ctx, `SELECT seq, debits_posted, credits_posted, debits_pending, credits_pending,
			last_entry_at, archived_before
		FROM entry_archives WHERE tenant_id = $1 AND account_id = $2`, tenant, id).
		Scan(&b.Seq, &b.DebitsPosted, &b.CreditsPosted, &b.DebitsPending, &b.CreditsPending, &last, &before)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, nil // no entry yet at that time: all zero
	}
	if err != nil {
		return b, err
	}
	if at.Before(last) {
		return b, reject(CodeHistoryArchived, "history of %q before %s is archived (see bulwark ledger archive)", id, before.Format(time.RFC3339))
	}
	return b, nil
}

// MaxPageSize bounds one page of history.
const MaxPageSize = 1000

// Entries returns up to limit entries of an account with seq > afterSeq, in
// chain order (keyset pagination: pass the last seq as afterSeq).
func (s *Store) Entries(ctx context.Context, tenant, id string, afterSeq int64, limit int) ([]Entry, error) {
	if _, err := s.Account(ctx, tenant, id); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxPageSize {
		limit = MaxPageSize
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, transaction_id::text, posting, side, effect, amount, asset,
			debits_posted, credits_posted, debits_pending, credits_pending, created_at
		FROM entries WHERE tenant_id = $1 AND account_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
		tenant, id, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := row.Scan(&e.Seq, &e.TransactionID, &e.Posting, &e.Side, &e.Effect, &e.Amount, &e.Asset,
			&e.DebitsPosted, &e.CreditsPosted, &e.DebitsPending, &e.CreditsPending, &e.CreatedAt)
		return e, err
	})
}

// Transaction reads a transaction by id or, when byKey, by idempotency key.
func (s *Store) Transaction(ctx context.Context, tenant, ref string, byKey bool) (Transaction, error) {
	var t Transaction
	where := "t.idempotency_key = $2"
	if !byKey {
		if !uuidPattern.MatchString(ref) {
			return t, reject(CodeTransactionNotFound, "no transaction %q", ref)
		}
		where = "t.id = $2::uuid"
	}
	err := s.pool.QueryRow(ctx, `SELECT `+txColumns+` FROM transactions t WHERE t.tenant_id = $1 AND `+where,
		tenant, ref).Scan(txScanDest(&t)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, reject(CodeTransactionNotFound, "no transaction %q", ref)
	}
	if err != nil {
		return t, fmt.Errorf("read transaction: %w", err)
	}
	finishScan(&t)
	return t, nil
}
