package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

// MaxBodyBytes bounds a request body: MaxBatchTransactions × ~1 KiB.
const MaxBodyBytes = 8 << 20

var (
	accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9_:@.\-/]{1,200}$`)
	assetPattern     = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,31}$`)
	uuidPattern      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// BatchInput is the body of POST /v1/transactions/batch.
type BatchInput struct {
	Transactions []TxInput `json:"transactions"`
}

// DecodeTransaction reads and validates one transaction.
func DecodeTransaction(r io.Reader) (TxInput, *Error) {
	var in TxInput
	if err := decodeStrict(r, &in); err != nil {
		return in, err
	}
	if err := validateTx(&in); err != nil {
		return in, err
	}
	return in, nil
}

// DecodeBatch reads and validates a batch; any invalid transaction rejects
// the whole request (its Index says which) and nothing is written.
func DecodeBatch(r io.Reader) ([]TxInput, *Error) {
	var in BatchInput
	if err := decodeStrict(r, &in); err != nil {
		return nil, err
	}
	return in.Transactions, ValidateBatch(in.Transactions)
}

// ValidateBatch checks the size, every transaction and key uniqueness.
func ValidateBatch(txs []TxInput) *Error {
	if len(txs) == 0 {
		return reject(CodeInvalid, "a batch needs at least one transaction")
	}
	if len(txs) > MaxBatchTransactions {
		return reject(CodeBatchTooLarge, "%d transactions in one batch, at most %d", len(txs), MaxBatchTransactions)
	}
	seen := make(map[string]int, len(txs))
	for i := range txs {
		if err := validateTx(&txs[i]); err != nil {
			err.Index = i
			return err
		}
		if j, dup := seen[txs[i].IdempotencyKey]; dup {
			e := reject(CodeDuplicateKey, "transactions %d and %d share idempotency key %q", j, i, txs[i].IdempotencyKey)
			e.Index = i
			return e
		}
		seen[txs[i].IdempotencyKey] = i
	}
	return nil
}

func decodeStrict(r io.Reader, v any) *Error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, amount.ErrSyntax) || errors.Is(err, amount.ErrRange) {
			return reject(CodeInvalidAmount, "%v (amounts are decimal strings of minor units, e.g. \"1500\")", err)
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return reject(CodeBatchTooLarge, "request body over %d bytes", MaxBodyBytes)
		}
		return reject(CodeMalformed, "%v", err)
	}
	if dec.More() {
		return reject(CodeMalformed, "trailing data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return reject(CodeMalformed, "trailing data after the JSON value")
	}
	return nil
}

func validateTx(in *TxInput) *Error {
	if n := len(in.IdempotencyKey); n == 0 || n > MaxIDLength {
		return reject(CodeInvalid, "idempotency_key is required, 1 to %d characters", MaxIDLength)
	}
	if len(in.Group) > MaxIDLength {
		return reject(CodeInvalid, "group longer than %d characters", MaxIDLength)
	}
	if err := validateMetadata(&in.Metadata); err != nil {
		return err
	}
	if in.Type == "" {
		in.Type = KindPosted
	}
	switch in.Type {
	case KindPosted, KindPending:
		return validatePostings(in)
	case KindPostPending, KindVoidPending:
		if !uuidPattern.MatchString(in.PendingID) {
			return reject(CodeInvalid, "%s needs pending_id, the id of a pending transaction", in.Type)
		}
		if len(in.Postings) > 0 || in.TimeoutSeconds != 0 {
			return reject(CodeInvalid, "%s takes no postings and no timeout_seconds", in.Type)
		}
		if in.Amount != nil && (in.Type == KindVoidPending || in.Amount.IsZero()) {
			return reject(CodeInvalidAmount, "amount is only for post_pending, and must be positive")
		}
		return nil
	default:
		return reject(CodeInvalid, "unknown type %q (posted, pending, post_pending, void_pending)", in.Type)
	}
}

func validatePostings(in *TxInput) *Error {
	if in.PendingID != "" || in.Amount != nil {
		return reject(CodeInvalid, "pending_id and amount belong to post_pending/void_pending")
	}
	if in.Type == KindPosted && in.TimeoutSeconds != 0 {
		return reject(CodeInvalid, "timeout_seconds belongs to pending transactions")
	}
	if in.TimeoutSeconds < 0 || time.Duration(in.TimeoutSeconds)*time.Second > MaxPendingTimeout {
		return reject(CodeInvalid, "timeout_seconds must be 0 (never) to %d", int64(MaxPendingTimeout/time.Second))
	}
	if len(in.Postings) == 0 || len(in.Postings) > MaxPostings {
		return reject(CodeInvalid, "a transaction needs 1 to %d postings", MaxPostings)
	}
	for i, p := range in.Postings {
		if !accountIDPattern.MatchString(p.Source) || !accountIDPattern.MatchString(p.Destination) {
			return reject(CodeInvalidAccount, "posting %d: account ids are 1-200 characters of A-Z a-z 0-9 _ : @ . - /", i)
		}
		if p.Source == p.Destination {
			return reject(CodeInvalidAccount, "posting %d: source and destination are the same account", i)
		}
		if p.Amount.IsZero() {
			return reject(CodeInvalidAmount, "posting %d: amount must be positive", i)
		}
		if !assetPattern.MatchString(p.Asset) {
			return reject(CodeInvalid, "posting %d: asset must match %s", i, assetPattern)
		}
	}
	return nil
}

func validateMetadata(m *json.RawMessage) *Error {
	if len(*m) == 0 || string(*m) == "null" {
		*m = json.RawMessage("{}")
		return nil
	}
	if len(*m) > MaxMetadataBytes {
		return reject(CodeInvalid, "metadata over %d bytes", MaxMetadataBytes)
	}
	if (*m)[0] != '{' {
		return reject(CodeInvalid, "metadata must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, *m); err != nil {
		return reject(CodeMalformed, "metadata: %v", err)
	}
	*m = buf.Bytes()
	return nil
}

// Digest fingerprints a validated transaction for idempotency: the same key
// with a different digest is a conflict. It hashes the canonical re-encoding,
// so whitespace and member order of the request do not matter.
func Digest(in *TxInput) [32]byte {
	b, err := json.Marshal(in)
	if err != nil {
		panic(fmt.Sprintf("ledger: marshal validated transaction: %v", err)) // programmer error
	}
	return sha256.Sum256(b)
}

// DecodeAccount reads and validates an account creation.
func DecodeAccount(r io.Reader) (AccountInput, *Error) {
	var in AccountInput
	if err := decodeStrict(r, &in); err != nil {
		return in, err
	}
	return in, ValidateAccount(&in)
}

// ValidateAccount checks an account creation and fills defaults.
func ValidateAccount(in *AccountInput) *Error {
	if !accountIDPattern.MatchString(in.ID) {
		return reject(CodeInvalidAccount, "account id must be 1-200 characters of A-Z a-z 0-9 _ : @ . - /")
	}
	if !assetPattern.MatchString(in.Asset) {
		return reject(CodeInvalid, "asset must match %s", assetPattern)
	}
	if in.Scale < 0 || in.Scale > 38 {
		return reject(CodeInvalid, "scale must be 0 to 38")
	}
	switch in.Rule {
	case "":
		in.Rule = RuleNone
	case RuleNone, RuleDebitsMustNotExceedCredits, RuleCreditsMustNotExceedDebits:
	default:
		return reject(CodeInvalid, "rule must be none, %s or %s", RuleDebitsMustNotExceedCredits, RuleCreditsMustNotExceedDebits)
	}
	return validateMetadata(&in.Metadata)
}
