package client

import (
	"encoding/json"
	"time"
)

// Rule is an account's balance rule.
type Rule string

// Balance rules.
const (
	RuleNone                       Rule = "none"
	RuleDebitsMustNotExceedCredits Rule = "debits_must_not_exceed_credits"
	RuleCreditsMustNotExceedDebits Rule = "credits_must_not_exceed_debits"
)

// AccountInput creates an account (POST /v1/accounts).
type AccountInput struct {
	ID       string          `json:"id"`
	Asset    string          `json:"asset"`
	Scale    int             `json:"scale"`
	Rule     Rule            `json:"rule,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// Account is an account with its balances. Amounts are decimal strings of
// minor units; Posted and Available may be negative.
type Account struct {
	ID             string          `json:"id"`
	Asset          string          `json:"asset"`
	Scale          int             `json:"scale"`
	Rule           Rule            `json:"rule"`
	Metadata       json.RawMessage `json:"metadata"`
	CreatedAt      time.Time       `json:"created_at"`
	Seq            int64           `json:"seq"`
	DebitsPosted   Amount          `json:"debits_posted"`
	CreditsPosted  Amount          `json:"credits_posted"`
	DebitsPending  Amount          `json:"debits_pending"`
	CreditsPending Amount          `json:"credits_pending"`
	Posted         string          `json:"posted"`
	Available      string          `json:"available"`
	// Stale is set when the server answered from a stale cached copy
	// (Bulwark-Stale: true).
	Stale bool `json:"-"`
}

// Balance is an account's balances as of a point in time.
type Balance struct {
	AccountID      string    `json:"account_id"`
	At             time.Time `json:"at"`
	Seq            int64     `json:"seq"`
	DebitsPosted   Amount    `json:"debits_posted"`
	CreditsPosted  Amount    `json:"credits_posted"`
	DebitsPending  Amount    `json:"debits_pending"`
	CreditsPending Amount    `json:"credits_pending"`
	Posted         string    `json:"posted"`
}

// Entry is one entry of an account's chain.
type Entry struct {
	Seq            int64     `json:"seq"`
	TransactionID  string    `json:"transaction_id"`
	Posting        int       `json:"posting"`
	Side           string    `json:"side"`
	Effect         string    `json:"effect"`
	Amount         Amount    `json:"amount"`
	Asset          string    `json:"asset"`
	DebitsPosted   Amount    `json:"debits_posted"`
	CreditsPosted  Amount    `json:"credits_posted"`
	DebitsPending  Amount    `json:"debits_pending"`
	CreditsPending Amount    `json:"credits_pending"`
	CreatedAt      time.Time `json:"created_at"`
}

// EntryPage is one page of entries; NextAfterSeq is 0 at the end of the
// chain, else the after value of the next page.
type EntryPage struct {
	Entries      []Entry `json:"entries"`
	NextAfterSeq int64   `json:"next_after_seq"`
}

// TxType is the type of a transaction input.
type TxType string

// Transaction types.
const (
	TypePosted      TxType = "posted"
	TypePending     TxType = "pending"
	TypePostPending TxType = "post_pending"
	TypeVoidPending TxType = "void_pending"
)

// Posting moves Amount of Asset from Source (debited) to Destination
// (credited).
type Posting struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Amount      Amount `json:"amount"`
	Asset       string `json:"asset"`
}

// Tx is one transaction to commit. An empty IdempotencyKey is filled in by
// the client with a random key (returned in Transaction.IdempotencyKey);
// give your own when you may need to retry after the call returns an
// error, so that the retry cannot commit twice.
type Tx struct {
	IdempotencyKey string          `json:"idempotency_key"`
	Type           TxType          `json:"type,omitempty"`
	Postings       []Posting       `json:"postings,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	TimeoutSeconds int64           `json:"timeout_seconds,omitempty"`
	PendingID      string          `json:"pending_id,omitempty"`
	Amount         Amount          `json:"amount,omitempty"`
	// Group links the transactions of one batch that commit together or
	// not at all. Grouped transactions are never batched automatically:
	// send the whole group with Submit.
	Group string `json:"group,omitempty"`
}

// Transaction is a committed transaction.
type Transaction struct {
	ID             string          `json:"id"`
	IdempotencyKey string          `json:"idempotency_key"`
	Kind           string          `json:"kind"`
	State          string          `json:"state"`
	PendingID      string          `json:"pending_id,omitempty"`
	ExpiresAt      *time.Time      `json:"expires_at,omitempty"`
	Postings       []Posting       `json:"postings"`
	Metadata       json.RawMessage `json:"metadata"`
	CreatedAt      time.Time       `json:"created_at"`
	// Replayed is set when the transaction had been committed before under
	// the same key and body (an idempotent replay).
	Replayed bool `json:"-"`
}

// Result is the outcome of one transaction of a batch: Transaction, or
// Err (an *Error) when it was rejected and nothing of it was written.
type Result struct {
	Transaction *Transaction
	Err         error
}

// resultBody is the JSON of a Result.
type resultBody struct {
	Transaction *Transaction `json:"transaction"`
	Replayed    bool         `json:"replayed"`
	Error       *problemBody `json:"error"`
}

func (r *resultBody) result() Result {
	if r.Error != nil {
		return Result{Err: r.Error.toError(statusOf(r.Error.Code), nil)}
	}
	if r.Transaction == nil {
		return Result{Err: newError("internal", -1, "batch result without transaction or error")}
	}
	r.Transaction.Replayed = r.Replayed
	return Result{Transaction: r.Transaction}
}

// Journal states.
const (
	JournalAccepted = "accepted"
	JournalApplied  = "applied"
	JournalRejected = "rejected"
)

// JournalEntry is the status of an asynchronous request: State is
// JournalAccepted until it was applied, then JournalApplied or
// JournalRejected with one Result per transaction.
type JournalEntry struct {
	ID         string
	State      string
	AcceptedAt time.Time
	FinishedAt *time.Time
	Results    []Result
}

type journalBody struct {
	ID         string       `json:"id"`
	State      string       `json:"state"`
	AcceptedAt time.Time    `json:"accepted_at"`
	FinishedAt *time.Time   `json:"finished_at"`
	Results    []resultBody `json:"results"`
}

func (j *journalBody) entry() *JournalEntry {
	e := &JournalEntry{ID: j.ID, State: j.State, AcceptedAt: j.AcceptedAt, FinishedAt: j.FinishedAt}
	for i := range j.Results {
		e.Results = append(e.Results, j.Results[i].result())
	}
	return e
}
