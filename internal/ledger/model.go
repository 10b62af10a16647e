package ledger

import (
	"encoding/json"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

// Balance rules of an account.
const (
	RuleNone                       = "none"
	RuleDebitsMustNotExceedCredits = "debits_must_not_exceed_credits"
	RuleCreditsMustNotExceedDebits = "credits_must_not_exceed_debits"
)

// Kind is a transaction's kind: its JSON "type" on input, "kind" on
// output, and the transactions.kind column.
type Kind string

// Transaction kinds.
const (
	KindPosted      Kind = "posted"       // moves funds now
	KindPending     Kind = "pending"      // reserves funds (two-phase, phase one)
	KindPostPending Kind = "post_pending" // posts a pending transaction, in full or in part
	KindVoidPending Kind = "void_pending" // releases a pending transaction
	// KindExpirePending is written by the expirer when a pending transaction
	// times out. It is internal: input decoding refuses it.
	KindExpirePending Kind = "expire_pending"
)

// State is a transaction's state (the transactions.state column). A
// pending transaction moves once, to posted, voided or expired.
type State string

// States of a transaction row.
const (
	StatePosted  State = "posted"
	StatePending State = "pending"
	StateVoided  State = "voided"
	StateExpired State = "expired"
)

// Effect is what an entry does to its account's balances (the
// entries.effect column); its side (D or C) says which of the pair.
type Effect string

// Entry effects.
const (
	EffectPosted  Effect = "posted"  // adds to debits_posted or credits_posted
	EffectHold    Effect = "hold"    // adds to debits_pending or credits_pending
	EffectRelease Effect = "release" // takes off debits_pending or credits_pending
)

// Limits. Each is a named maximum with the arithmetic behind it.
const (
	// MaxBatchTransactions bounds one request: 8,190 transactions × ~1 KiB of
	// JSON ≈ 8 MiB, the request body limit, and it keeps one batch's
	// PostgreSQL transaction well under a second.
	MaxBatchTransactions = 8190
	// MaxPostings bounds one transaction's postings (and so its 2-4 entries
	// per posting).
	MaxPostings = 64
	// MaxIDLength bounds account ids, asset codes and idempotency keys.
	MaxIDLength = 200
	// MaxMetadataBytes bounds the metadata object of an account or transaction.
	MaxMetadataBytes = 4096
	// MaxPendingTimeout bounds how long funds may stay reserved.
	MaxPendingTimeout = 30 * 24 * time.Hour
)

// Account is an account with its balances.
type Account struct {
	ID             string          `json:"id"`
	Asset          string          `json:"asset"`
	Scale          int             `json:"scale"`
	Rule           string          `json:"rule"`
	Metadata       json.RawMessage `json:"metadata"`
	CreatedAt      time.Time       `json:"created_at"`
	Seq            int64           `json:"seq"`
	DebitsPosted   amount.Uint128  `json:"debits_posted"`
	CreditsPosted  amount.Uint128  `json:"credits_posted"`
	DebitsPending  amount.Uint128  `json:"debits_pending"`
	CreditsPending amount.Uint128  `json:"credits_pending"`
	// Posted is credits_posted - debits_posted, signed.
	Posted string `json:"posted"`
	// Available is what can still be debited under the account's rule
	// (credits_posted - debits_posted - debits_pending), signed.
	Available string `json:"available"`
}

// AccountInput creates an account.
type AccountInput struct {
	ID       string          `json:"id"`
	Asset    string          `json:"asset"`
	Scale    int             `json:"scale"`
	Rule     string          `json:"rule,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// Posting moves Amount of Asset from Source (debited) to Destination
// (credited). A posting is balanced by construction: every posting yields
// one debit and one credit entry of the same amount and asset.
type Posting struct {
	Source      string         `json:"source"`
	Destination string         `json:"destination"`
	Amount      amount.Uint128 `json:"amount"`
	Asset       string         `json:"asset"`
}

// TxInput is one transaction of a request.
type TxInput struct {
	IdempotencyKey string `json:"idempotency_key"`
	// Type is posted (default), pending, post_pending or void_pending.
	Type     Kind            `json:"type,omitempty"`
	Postings []Posting       `json:"postings,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// TimeoutSeconds of a pending transaction; 0 means it never expires.
	TimeoutSeconds int64 `json:"timeout_seconds,omitempty"`
	// PendingID names the pending transaction a post_pending/void_pending acts on.
	PendingID string `json:"pending_id,omitempty"`
	// Amount of a post_pending: empty posts the full pending amount; a
	// smaller amount posts part and releases the rest (single-posting only).
	Amount *amount.Uint128 `json:"amount,omitempty"`
	// Group links transactions of one request: all transactions with the
	// same non-empty group commit together or fail together.
	Group string `json:"group,omitempty"`
}

// Transaction is a committed transaction.
type Transaction struct {
	ID             string          `json:"id"`
	IdempotencyKey string          `json:"idempotency_key"`
	Kind           Kind            `json:"kind"`
	State          State           `json:"state"`
	PendingID      string          `json:"pending_id,omitempty"`
	ExpiresAt      *time.Time      `json:"expires_at,omitempty"`
	Postings       []Posting       `json:"postings"`
	Metadata       json.RawMessage `json:"metadata"`
	CreatedAt      time.Time       `json:"created_at"`
}

// Entry is one link of an account's chain.
type Entry struct {
	Seq            int64          `json:"seq"`
	TransactionID  string         `json:"transaction_id"`
	Posting        int            `json:"posting"`
	Side           string         `json:"side"`
	Effect         Effect         `json:"effect"`
	Amount         amount.Uint128 `json:"amount"`
	Asset          string         `json:"asset"`
	DebitsPosted   amount.Uint128 `json:"debits_posted"`
	CreditsPosted  amount.Uint128 `json:"credits_posted"`
	DebitsPending  amount.Uint128 `json:"debits_pending"`
	CreditsPending amount.Uint128 `json:"credits_pending"`
	CreatedAt      time.Time      `json:"created_at"`
}

// Result is the outcome of one transaction of a request.
type Result struct {
	// Transaction is set when the transaction is committed (now or earlier:
	// Replayed tells).
	Transaction *Transaction `json:"transaction,omitempty"`
	Replayed    bool         `json:"replayed,omitempty"`
	// Err is set when the transaction was rejected; nothing of it was written.
	Err *Error `json:"error,omitempty"`
}
