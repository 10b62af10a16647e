package client

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// The server's limits and patterns (openapi.yaml), checked before sending
// so that a bad input fails fast with the code the server would answer.
const (
	maxKeyLength      = 200            // idempotency_key and group
	maxPostings       = 64             // postings of one transaction
	maxTimeoutSeconds = 30 * 24 * 3600 // timeout_seconds: 30 days
	maxMetadataBytes  = 4096           // metadata as sent
	// MaxBatch is the most transactions of one batch request: 8,190 × ~1 KiB
	// stays within the server's 8 MiB body limit.
	MaxBatch = 8190
	// maxUint128 is 2^128-1, the largest amount.
	maxUint128 = "340282366920938463463374607431768211455"
)

var (
	accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9_:@.\-/]{1,200}$`)
	assetPattern     = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,31}$`)
	uuidPattern      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// Amount is an unsigned 128-bit count of minor units as a canonical
// decimal string ("1500" is 15.00 of an asset of scale 2): "0" to
// 2^128-1, no sign, leading zero, fraction or exponent.
type Amount string

// Uint64 returns n as an Amount.
func Uint64(n uint64) Amount { return Amount(strconv.FormatUint(n, 10)) }

// ParseAmount validates s and returns it as an Amount; an invalid one is
// an *Error with code invalid_amount (ErrInvalidAmount).
func ParseAmount(s string) (Amount, error) {
	if err := Amount(s).check(); err != nil {
		return "", err
	}
	return Amount(s), nil
}

func (a Amount) check() *Error {
	s := string(a)
	ok := len(s) > 0 && len(s) <= len(maxUint128) && (s == "0" || s[0] != '0')
	for i := 0; ok && i < len(s); i++ {
		ok = s[i] >= '0' && s[i] <= '9'
	}
	if ok && len(s) == len(maxUint128) && s > maxUint128 {
		ok = false
	}
	if !ok {
		return newError("invalid_amount", -1, "amount %q is not a canonical decimal string from 0 to 2^128-1", s)
	}
	return nil
}

func (a Amount) checkPositive() *Error {
	if err := a.check(); err != nil {
		return err
	}
	if a == "0" {
		return newError("invalid_amount", -1, "amount must be positive")
	}
	return nil
}

// validateTx checks what the server checks of one transaction before
// anything is written (openapi.yaml TxInput), with the same codes.
// Metadata is checked by the server only.
func validateTx(tx *Tx) *Error {
	if n := len(tx.IdempotencyKey); n == 0 || n > maxKeyLength || !validText(tx.IdempotencyKey) {
		return newError("invalid_request", -1, "idempotency_key is required, 1 to %d characters of UTF-8 without U+0000", maxKeyLength)
	}
	if len(tx.Group) > maxKeyLength || !validText(tx.Group) {
		return newError("invalid_request", -1, "group longer than %d characters or not UTF-8", maxKeyLength)
	}
	if err := validateMetadata(tx.Metadata); err != nil {
		return err
	}
	switch tx.Type {
	case "", TypePosted, TypePending:
		return validatePostings(tx)
	case TypePostPending, TypeVoidPending:
		if !uuidPattern.MatchString(tx.PendingID) {
			return newError("invalid_request", -1, "%s needs pending_id, the id of a pending transaction", tx.Type)
		}
		if len(tx.Postings) > 0 || tx.TimeoutSeconds != 0 {
			return newError("invalid_request", -1, "%s takes no postings and no timeout_seconds", tx.Type)
		}
		if tx.Amount != "" && tx.Type == TypeVoidPending {
			return newError("invalid_amount", -1, "amount is only for post_pending")
		}
		if tx.Amount != "" {
			return tx.Amount.checkPositive()
		}
		return nil
	default:
		return newError("invalid_request", -1, "unknown type %q (posted, pending, post_pending, void_pending)", tx.Type)
	}
}

func validatePostings(tx *Tx) *Error {
	if tx.PendingID != "" || tx.Amount != "" {
		return newError("invalid_request", -1, "pending_id and amount belong to post_pending/void_pending")
	}
	if tx.Type != TypePending && tx.TimeoutSeconds != 0 {
		return newError("invalid_request", -1, "timeout_seconds belongs to pending transactions")
	}
	if tx.TimeoutSeconds < 0 || tx.TimeoutSeconds > maxTimeoutSeconds {
		return newError("invalid_request", -1, "timeout_seconds must be 0 (never) to %d", maxTimeoutSeconds)
	}
	if len(tx.Postings) == 0 || len(tx.Postings) > maxPostings {
		return newError("invalid_request", -1, "a transaction needs 1 to %d postings", maxPostings)
	}
	for i, p := range tx.Postings {
		if !accountIDPattern.MatchString(p.Source) || !accountIDPattern.MatchString(p.Destination) {
			return newError("invalid_account", -1, "posting %d: account ids are 1-200 characters of A-Z a-z 0-9 _ : @ . - /", i)
		}
		if p.Source == p.Destination {
			return newError("invalid_account", -1, "posting %d: source and destination are the same account", i)
		}
		if err := p.Amount.checkPositive(); err != nil {
			err.Detail = "posting " + strconv.Itoa(i) + ": " + err.Detail
			return err
		}
		if !assetPattern.MatchString(p.Asset) {
			return newError("invalid_request", -1, "posting %d: asset must match %s", i, assetPattern)
		}
	}
	return nil
}

// validateMetadata refuses metadata that is not one JSON object (or null)
// of at most maxMetadataBytes: one caller's bad metadata must fail its own
// call, not the batch it would share with others.
func validateMetadata(m json.RawMessage) *Error {
	if len(m) == 0 {
		return nil
	}
	if !json.Valid(m) {
		return newError("malformed_json", -1, "metadata is not valid JSON")
	}
	if t := bytes.TrimSpace(m); t[0] != '{' && string(t) != "null" {
		return newError("malformed_json", -1, "metadata must be a JSON object")
	}
	if len(m) > maxMetadataBytes {
		return newError("invalid_request", -1, "metadata over %d bytes", maxMetadataBytes)
	}
	return nil
}

// validateBatch checks every transaction and that no two share a key; the
// first failure names its transaction (Index), as the server's would.
func validateBatch(txs []Tx) *Error {
	if len(txs) == 0 || len(txs) > MaxBatch {
		code := "invalid_request"
		if len(txs) > MaxBatch {
			code = "batch_too_large"
		}
		return newError(code, -1, "%d transactions in one batch, want 1 to %d", len(txs), MaxBatch)
	}
	seen := make(map[string]int, len(txs))
	for i := range txs {
		if err := validateTx(&txs[i]); err != nil {
			err.Index = i
			return err
		}
		if j, dup := seen[txs[i].IdempotencyKey]; dup {
			return newError("duplicate_idempotency_key", i, "transactions %d and %d share idempotency key %q", j, i, txs[i].IdempotencyKey)
		}
		seen[txs[i].IdempotencyKey] = i
	}
	return nil
}

// validAccountID is the server's id pattern; on creation also no empty,
// "." or ".." segment between slashes.
func validAccountID(id string, creating bool) *Error {
	if !accountIDPattern.MatchString(id) {
		return newError("invalid_account", -1, "account id %q: 1-200 characters of A-Z a-z 0-9 _ : @ . - /", id)
	}
	if !creating {
		return nil
	}
	start := 0
	for i := 0; i <= len(id); i++ {
		if i == len(id) || id[i] == '/' {
			if seg := id[start:i]; seg == "" || seg == "." || seg == ".." {
				return newError("invalid_account", -1, "account id %q has an empty, \".\" or \"..\" segment", id)
			}
			start = i + 1
		}
	}
	return nil
}

func validText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return true
}
