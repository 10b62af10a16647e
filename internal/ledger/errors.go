package ledger

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/bulwark-ledger/bulwark/internal/problem"
)

// Error is a rejection with a stable machine-readable code. Codes are API.
type Error struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
	// Index is the position of the offending transaction in its request, or -1.
	Index int `json:"index"`
	// Pointer is the JSON pointer of the offending value in the request
	// body, when the body itself was refused.
	Pointer string `json:"pointer,omitempty"`
	// status overrides the code's status (refused bodies: 400, 413, 415).
	status int
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

// Status is the HTTP status of a rejection.
func (e *Error) Status() int {
	if e.status != 0 {
		return e.status
	}
	if s, ok := statusOf[e.Code]; ok {
		return s
	}
	if s, ok := problem.DecodeStatus(e.Code); ok {
		return s
	}
	return http.StatusUnprocessableEntity
}

func reject(code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...), Index: -1}
}

// Rejection codes.
const (
	CodeMalformed           = "malformed_json"
	CodeInvalid             = "invalid_request"
	CodeInvalidAmount       = "invalid_amount"
	CodeInvalidAccount      = "invalid_account"
	CodeBatchTooLarge       = "batch_too_large"
	CodeDuplicateKey        = "duplicate_idempotency_key"
	CodeIdempotencyConflict = "idempotency_conflict"
	CodeAccountNotFound     = "account_not_found"
	CodeAccountExists       = "account_exists"
	CodeAssetMismatch       = "asset_mismatch"
	CodeInsufficientFunds   = "insufficient_funds"
	CodeExceedsDebits       = "credits_exceed_debits"
	CodeOverflow            = "amount_overflow"
	CodePendingNotFound     = "pending_not_found"
	CodePendingPosted       = "pending_already_posted"
	CodePendingVoided       = "pending_already_voided"
	CodePendingExpired      = "pending_expired"
	CodePostExceedsPending  = "post_exceeds_pending"
	CodeLinkedFailed        = "linked_transaction_failed"
	CodeTransactionNotFound = "transaction_not_found"
	CodeJournalNotFound     = "journal_entry_not_found"
	CodeOverloaded          = "overloaded"
	CodeHistoryArchived     = "history_archived"
	CodeNumberOutOfRange    = "number_out_of_range"
	CodeUnstorable          = "unstorable_value"
	CodeReadFailed          = "read_failed"
)

var statusOf = map[string]int{
	CodeMalformed:           http.StatusBadRequest,
	CodeInvalid:             http.StatusBadRequest,
	CodeInvalidAmount:       http.StatusBadRequest,
	CodeInvalidAccount:      http.StatusBadRequest,
	CodeBatchTooLarge:       http.StatusRequestEntityTooLarge,
	CodeDuplicateKey:        http.StatusBadRequest,
	CodeIdempotencyConflict: http.StatusConflict,
	CodeAccountNotFound:     http.StatusNotFound,
	CodeAccountExists:       http.StatusConflict,
	CodePendingNotFound:     http.StatusNotFound,
	CodeTransactionNotFound: http.StatusNotFound,
	CodeJournalNotFound:     http.StatusNotFound,
	CodePendingPosted:       http.StatusConflict,
	CodePendingVoided:       http.StatusConflict,
	CodePendingExpired:      http.StatusConflict,
	CodeOverloaded:          http.StatusServiceUnavailable,
	CodeHistoryArchived:     http.StatusGone,
	CodeNumberOutOfRange:    http.StatusBadRequest,
	CodeUnstorable:          http.StatusBadRequest,
	CodeReadFailed:          http.StatusServiceUnavailable,
}

// Sentinel errors of the write path.
var (
	// ErrOverloaded: the pipeline queue is full. Safe to retry after a pause.
	ErrOverloaded = errors.New("ledger: commit pipeline is full")
	// ErrClosed: the pipeline is shutting down. Safe to retry elsewhere.
	ErrClosed = errors.New("ledger: commit pipeline is closed")
)
