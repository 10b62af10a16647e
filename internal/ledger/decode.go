package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/bulwark-ledger/bulwark/internal/amount"
	"github.com/bulwark-ledger/bulwark/internal/problem"
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

// Batch is a validated request: 1 to MaxBatchTransactions transactions,
// each valid and in canonical form, with distinct idempotency keys. It is
// the only input of Pipeline.Submit and Journal.Accept, and every
// constructor validates (NewBatch, DecodeBatch, DecodeTransaction; inside
// the package, the journal applier and the expirer), so nothing
// unvalidated reaches the commit pipeline.
//
// It carries what the committer would otherwise compute while it holds row
// locks, computed once by the goroutine that builds it: each transaction's
// idempotency digest and the JSON of its postings.
//
// A Batch is immutable: submitting it again (a retry after ErrOverloaded
// or a timeout) replays what committed. The zero Batch is empty, and
// Submit refuses it.
type Batch struct {
	txs      []TxInput
	digests  [][32]byte
	postings []string // JSON of txs[i].Postings, "" when it has none
	// journalID names the journal row whose request this is; only the
	// journal applier sets it, so the row's outcome commits with its effects.
	journalID string
}

// origin says who built a transaction: expire_pending is accepted only
// from the expirer, never from a client (HTTP, the journal, Go callers).
type origin uint8

const (
	fromClient origin = iota
	fromExpirer
)

// NewBatch validates txs and returns them as a Batch; any invalid
// transaction rejects the whole batch (its Index says which). It copies
// txs: the caller may reuse them.
func NewBatch(txs []TxInput) (Batch, *Error) {
	own := cloneTxs(txs)
	if err := validateBatch(own, fromClient); err != nil {
		return Batch{}, err
	}
	return prepare(own), nil
}

// Len is the number of transactions in b.
func (b Batch) Len() int { return len(b.txs) }

// Transactions returns a copy of b's transactions, validated: defaults
// filled and metadata in canonical form.
func (b Batch) Transactions() []TxInput { return cloneTxs(b.txs) }

// prepare computes what the pipeline needs of validated txs. It does not
// validate: every caller has (export_test.go's SubmitUnchecked aside).
func prepare(txs []TxInput) Batch {
	b := Batch{txs: txs, digests: make([][32]byte, len(txs)), postings: make([]string, len(txs))}
	for i := range txs {
		b.digests[i] = Digest(&txs[i])
		if len(txs[i].Postings) > 0 {
			b.postings[i] = string(postingsJSON(txs[i].Postings))
		}
	}
	return b
}

// cloneTxs copies txs deeply enough that no slice or pointer of the copy is
// shared with txs (metadata is replaced, never modified, by validation).
func cloneTxs(txs []TxInput) []TxInput {
	out := make([]TxInput, len(txs))
	copy(out, txs)
	n := 0
	for i := range txs {
		n += len(txs[i].Postings)
	}
	slab := make([]Posting, 0, n)
	for i := range out {
		if out[i].Postings != nil {
			at := len(slab)
			slab = append(slab, out[i].Postings...)
			out[i].Postings = slab[at:len(slab):len(slab)]
		}
		if a := out[i].Amount; a != nil {
			v := *a
			out[i].Amount = &v
		}
	}
	return out
}

// DecodeTransaction decodes and validates one transaction from a request
// body (see problem.Decode for the strict JSON rules) as a batch of one.
func DecodeTransaction(body []byte) (Batch, *Error) {
	var in TxInput
	if err := decodeStrict(body, &in); err != nil {
		return Batch{}, err
	}
	if err := validateTx(&in, fromClient); err != nil {
		return Batch{}, err
	}
	return prepare([]TxInput{in}), nil
}

// DecodeBatch decodes and validates a batch; any invalid transaction
// rejects the whole request (its Index says which) and nothing is written.
func DecodeBatch(body []byte) (Batch, *Error) {
	var in BatchInput
	if err := decodeStrict(body, &in); err != nil {
		return Batch{}, err
	}
	if err := validateBatch(in.Transactions, fromClient); err != nil {
		return Batch{}, err
	}
	return prepare(in.Transactions), nil
}

// validateBatch checks the size, every transaction and key uniqueness,
// filling defaults and canonicalizing metadata in place.
func validateBatch(txs []TxInput, from origin) *Error {
	if len(txs) == 0 {
		return reject(CodeInvalid, "a batch needs at least one transaction")
	}
	if len(txs) > MaxBatchTransactions {
		return reject(CodeBatchTooLarge, "%d transactions in one batch, at most %d", len(txs), MaxBatchTransactions)
	}
	seen := make(map[string]int, len(txs))
	for i := range txs {
		if err := validateTx(&txs[i], from); err != nil {
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

func decodeStrict(body []byte, v any) *Error {
	de := problem.Decode(body, v)
	if de == nil {
		return nil
	}
	return fromDecodeError(de)
}

// fromDecodeError turns a refused body into a rejection: an amount's own
// syntax error is invalid_amount, and an error inside the transactions
// array of a batch says which transaction (Index).
func fromDecodeError(de *problem.DecodeError) *Error {
	e := &Error{Code: de.Code, Detail: de.Detail, Index: -1, Pointer: de.Pointer}
	if errors.Is(de.Err, amount.ErrSyntax) || errors.Is(de.Err, amount.ErrRange) {
		e.Code = CodeInvalidAmount
		e.Detail = fmt.Sprintf("%v (amounts are decimal strings of minor units, e.g. \"1500\")", de.Err)
	}
	if rest, ok := strings.CutPrefix(de.Pointer, "/transactions/"); ok {
		n, _, _ := strings.Cut(rest, "/")
		if i, err := strconv.Atoi(n); err == nil {
			e.Index = i
		}
	}
	return e
}

func validateTx(in *TxInput, from origin) *Error {
	if n := len(in.IdempotencyKey); n == 0 || n > MaxIDLength {
		return reject(CodeInvalid, "idempotency_key is required, 1 to %d characters", MaxIDLength)
	}
	if err := checkText("idempotency_key", in.IdempotencyKey); err != nil {
		return err
	}
	if len(in.Group) > MaxIDLength {
		return reject(CodeInvalid, "group longer than %d characters", MaxIDLength)
	}
	if err := checkText("group", in.Group); err != nil {
		return err
	}
	if err := validateMetadata(&in.Metadata); err != nil {
		return err
	}
	if in.Type == "" {
		in.Type = KindPosted
	}
	switch {
	case in.Type == KindPosted || in.Type == KindPending:
		return validatePostings(in)
	case in.Type == KindPostPending || in.Type == KindVoidPending || in.Type == KindExpirePending && from == fromExpirer:
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

// checkText refuses what a PostgreSQL text column cannot hold. Bodies
// decoded by problem.Decode never hold such strings; this guards callers of
// Submit that build inputs in Go (the journal, benchmarks, embedders).
func checkText(field, s string) *Error {
	if !utf8.ValidString(s) {
		return reject(problem.CodeInvalidUTF8, "%s is not valid UTF-8", field)
	}
	if problem.HasNUL(s) {
		return reject(problem.CodeNULCharacter, "%s may not contain U+0000", field)
	}
	return nil
}

// Limits of metadata numbers: PostgreSQL's numeric (behind jsonb) holds at
// most 131,072 digits before the point and 16,383 after, so an exponent
// like 1e200000 would fail at commit. Bounding the text and the exponent
// keeps every accepted number storable, with room for any real identifier
// or measurement.
const (
	maxNumberChars    = 100
	maxNumberExponent = 1000
)

// validateMetadata checks a metadata object and rewrites it in canonical
// form: compact, members sorted by name at every level, numbers as sent.
// Member order then does not change the idempotency digest, and the stored
// value is what PostgreSQL's jsonb would keep anyway.
func validateMetadata(m *json.RawMessage) *Error {
	if len(*m) == 0 || string(*m) == "null" {
		*m = json.RawMessage("{}")
		return nil
	}
	if len(*m) > MaxMetadataBytes {
		return reject(CodeInvalid, "metadata over %d bytes", MaxMetadataBytes)
	}
	if de := problem.ScanBody(*m); de != nil {
		return fromDecodeError(de)
	}
	// RFC 7493 (I-JSON): well-formed, valid UTF-8, unique member names.
	if !jsontext.Value(*m).IsValid() {
		return reject(CodeMalformed, "metadata is not valid JSON with unique member names")
	}
	dec := json.NewDecoder(bytes.NewReader(*m))
	dec.UseNumber() // numbers keep their exact text
	var v any
	if err := dec.Decode(&v); err != nil {
		return reject(CodeMalformed, "metadata: %v", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return reject(CodeInvalid, "metadata must be a JSON object")
	}
	if err := checkNumbers(v); err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return reject(CodeInvalid, "metadata: %v", err)
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(out) > MaxMetadataBytes {
		return reject(CodeInvalid, "metadata over %d bytes", MaxMetadataBytes)
	}
	*m = out
	return nil
}

// checkNumbers refuses numbers that jsonb cannot store (see maxNumberChars).
func checkNumbers(v any) *Error {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if err := checkNumbers(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkNumbers(e); err != nil {
				return err
			}
		}
	case json.Number:
		s := string(x)
		if len(s) > maxNumberChars {
			return reject(CodeNumberOutOfRange, "metadata number of %d characters, at most %d", len(s), maxNumberChars)
		}
		if i := strings.IndexAny(s, "eE"); i >= 0 {
			exp, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
			if err != nil || exp > maxNumberExponent || exp < -maxNumberExponent {
				return reject(CodeNumberOutOfRange, "metadata number %s: exponent beyond ±%d", s, maxNumberExponent)
			}
		}
	}
	return nil
}

// ValidAccountID reports whether id may name a new account. Beyond the
// character set, no '/'-separated segment may be empty, "." or "..": HTTP
// routers clean such paths (GET /v1/accounts/.. would be redirected), so
// the account could be created but never read.
func ValidAccountID(id string) bool {
	if !accountIDPattern.MatchString(id) {
		return false
	}
	for seg := range strings.SplitSeq(id, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
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
func DecodeAccount(body []byte) (AccountInput, *Error) {
	var in AccountInput
	if err := decodeStrict(body, &in); err != nil {
		return in, err
	}
	return in, ValidateAccount(&in)
}

// ValidateAccount checks an account creation and fills defaults.
func ValidateAccount(in *AccountInput) *Error {
	if !ValidAccountID(in.ID) {
		return reject(CodeInvalidAccount, "account id must be 1-200 characters of A-Z a-z 0-9 _ : @ . - /, "+
			"with no empty, \".\" or \"..\" segment between slashes")
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
