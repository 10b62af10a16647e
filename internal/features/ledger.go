package features

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/amount"
	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

// Ledger source: each entry of the ledger (one side of one posting on one
// account) is one event with the fields of spec.LedgerFields, its id
// spec.LedgerEventID and its time the entry's created_at (the database
// clock at commit); spec.LedgerEvent builds it. The live path reads the
// relay's entries topic (inserts and snapshot reads); backfill and verify
// read the entries table.

// cdcEvent is the part of a relay record the ledger source needs.
type cdcEvent struct {
	Op    string          `json:"op"`
	After json.RawMessage `json:"after"`
}

// entryRow is an entries row as the relay and the table give it.
type entryRow struct {
	TenantID      string      `json:"tenant_id"`
	AccountID     string      `json:"account_id"`
	TransactionID string      `json:"transaction_id"`
	Posting       int         `json:"posting"`
	Side          string      `json:"side"`
	Effect        string      `json:"effect"`
	Amount        json.Number `json:"amount"`
	Asset         string      `json:"asset"`
	CreatedAt     time.Time   `json:"created_at"`
}

// entryCols are the entries columns entryRow.scan reads.
const entryCols = `tenant_id, account_id, transaction_id::text, posting, side, effect, amount::text, asset, created_at`

// scan reads entryCols, then extra columns into extra.
func (r *entryRow) scan(rows pgx.Rows, extra ...any) error {
	var amt string
	dst := append([]any{&r.TenantID, &r.AccountID, &r.TransactionID, &r.Posting, &r.Side, &r.Effect, &amt, &r.Asset, &r.CreatedAt}, extra...)
	if err := rows.Scan(dst...); err != nil {
		return err
	}
	r.Amount = json.Number(amt)
	return nil
}

// decodeEntry decodes a relay record of the entries topic; ok is false for
// operations that are not new entries (entries are append-only; updates,
// deletes and truncates come only from archiving, which removes history).
func decodeEntry(value []byte) (tenant string, ev spec.Event, ok bool, err error) {
	var ce cdcEvent
	if err := json.Unmarshal(value, &ce); err != nil {
		return "", spec.Event{}, false, fmt.Errorf("entries record: %w", err)
	}
	if ce.Op != "c" && ce.Op != "r" {
		return "", spec.Event{}, false, nil
	}
	var row entryRow
	if err := json.Unmarshal(ce.After, &row); err != nil {
		return "", spec.Event{}, false, fmt.Errorf("entries record: %w", err)
	}
	if row.TenantID == "" || row.AccountID == "" || row.TransactionID == "" || row.CreatedAt.IsZero() {
		return "", spec.Event{}, false, fmt.Errorf("entries record without tenant, account, transaction or time")
	}
	ev, err = row.event()
	return row.TenantID, ev, err == nil, err
}

func (r *entryRow) event() (spec.Event, error) {
	amt, err := amount.Parse(r.Amount.String())
	if err != nil {
		return spec.Event{}, fmt.Errorf("entry of %s on %s: amount %q: %w", r.TransactionID, r.AccountID, r.Amount, err)
	}
	return spec.LedgerEvent(r.TransactionID, r.Posting, r.Side, r.Effect, r.AccountID, r.Asset, amt, r.CreatedAt), nil
}
