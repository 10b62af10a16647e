package features

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

// Ledger source: each entry of the ledger (one side of one posting on one
// account) is one event with the fields of spec.LedgerFields:
//
//	account      the entry's account (the usual entity)
//	asset        the asset
//	amount       the amount, an exact integer (128-bit amounts keep every digit)
//	side         "debit" or "credit"
//	effect       "posted", "hold" or "release"
//	transaction  the transaction id
//
// Its id is "<account>#<seq>" (unique per tenant) and its time the
// entry's created_at (the database clock at commit). The live path reads
// the relay's entries topic (inserts and snapshot reads); backfill reads
// the entries table.

// cdcEvent is the part of a relay record the ledger source needs.
type cdcEvent struct {
	Op    string          `json:"op"`
	After json.RawMessage `json:"after"`
}

// entryRow is an entries row as the relay and the table give it.
type entryRow struct {
	TenantID      string      `json:"tenant_id"`
	AccountID     string      `json:"account_id"`
	Seq           int64       `json:"seq"`
	TransactionID string      `json:"transaction_id"`
	Side          string      `json:"side"`
	Effect        string      `json:"effect"`
	Amount        json.Number `json:"amount"`
	Asset         string      `json:"asset"`
	CreatedAt     time.Time   `json:"created_at"`
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
	ev, err = row.event()
	return row.TenantID, ev, err == nil, err
}

func (r *entryRow) event() (spec.Event, error) {
	amt, err := spec.ParseInt(r.Amount.String())
	if err != nil {
		return spec.Event{}, fmt.Errorf("entry %s#%d: amount %q: %w", r.AccountID, r.Seq, r.Amount, err)
	}
	side := "debit"
	if r.Side == "C" {
		side = "credit"
	}
	return spec.Event{
		ID:   r.AccountID + "#" + strconv.FormatInt(r.Seq, 10),
		Time: r.CreatedAt,
		Fields: map[string]spec.Value{
			"account":     spec.StringValue(r.AccountID),
			"asset":       spec.StringValue(r.Asset),
			"amount":      spec.IntValue(amt),
			"side":        spec.StringValue(side),
			"effect":      spec.StringValue(r.Effect),
			"transaction": spec.StringValue(r.TransactionID),
		},
	}, nil
}
