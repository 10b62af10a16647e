package ledger

import (
	"errors"
	"fmt"

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
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

// Status is the HTTP status of a rejection (problem's table).
func (e *Error) Status() int { return problem.Status(e.Code) }

func reject(code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...), Index: -1}
}

// Rejection codes of the ledger: names for entries of problem's table.
const (
	CodeMalformed           = problem.CodeMalformedJSON
	CodeInvalid             = problem.CodeInvalidRequest
	CodeInvalidAmount       = problem.CodeInvalidAmount
	CodeInvalidAccount      = problem.CodeInvalidAccount
	CodeBatchTooLarge       = problem.CodeBatchTooLarge
	CodeDuplicateKey        = problem.CodeDuplicateIdempotencyKey
	CodeIdempotencyConflict = problem.CodeIdempotencyConflict
	CodeAccountNotFound     = problem.CodeAccountNotFound
	CodeAccountExists       = problem.CodeAccountExists
	CodeAssetMismatch       = problem.CodeAssetMismatch
	CodeInsufficientFunds   = problem.CodeInsufficientFunds
	CodeExceedsDebits       = problem.CodeCreditsExceedDebits
	CodeOverflow            = problem.CodeAmountOverflow
	CodePendingNotFound     = problem.CodePendingNotFound
	CodePendingPosted       = problem.CodePendingAlreadyPosted
	CodePendingVoided       = problem.CodePendingAlreadyVoided
	CodePendingExpired      = problem.CodePendingExpired
	CodePostExceedsPending  = problem.CodePostExceedsPending
	CodeLinkedFailed        = problem.CodeLinkedTransactionFailed
	CodeTransactionNotFound = problem.CodeTransactionNotFound
	CodeJournalNotFound     = problem.CodeJournalEntryNotFound
	CodeOverloaded          = problem.CodeOverloaded
	CodeHistoryArchived     = problem.CodeHistoryArchived
	CodeNumberOutOfRange    = problem.CodeNumberOutOfRange
	CodeUnstorable          = problem.CodeUnstorableValue
	CodeReadFailed          = problem.CodeReadFailed
)

// Sentinel errors of the write path.
var (
	// ErrOverloaded: the pipeline queue is full. Safe to retry after a pause.
	ErrOverloaded = errors.New("ledger: commit pipeline is full")
	// ErrClosed: the pipeline is shutting down. Safe to retry elsewhere.
	ErrClosed = errors.New("ledger: commit pipeline is closed")
)
