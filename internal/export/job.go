package export

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/problem"
)

// Kinds of export.
const (
	KindEntries      = "entries"      // entries of one account or of all, in a time range
	KindTransactions = "transactions" // transactions in a time range
	KindAccounts     = "accounts"     // every account with its balances as of the cut-off
)

// Formats and compressions.
const (
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"

	CompressionNone = "none"
	CompressionGzip = "gzip"
)

// States of a job. queued → running → succeeded | failed | cancelled;
// succeeded → expired when retention removes the file.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
	StateExpired   = "expired"
)

// Queues.
const (
	QueueNormal = "normal"
	QueueHuge   = "huge"
)

// maxRequestBytes bounds a create request body: the largest valid one is
// under 400 bytes.
const maxRequestBytes = 4 << 10

// Request is the body of POST /v1/exports.
type Request struct {
	Kind        string     `json:"kind"`
	AccountID   string     `json:"account_id,omitempty"`
	From        *time.Time `json:"from,omitempty"`
	To          *time.Time `json:"to,omitempty"`
	Format      string     `json:"format,omitempty"`
	Compression string     `json:"compression,omitempty"`
}

// DecodeRequest decodes and validates a create request strictly: unknown
// members, an unknown kind, format or compression, a missing, inverted or
// misplaced range are refused with their problem code. Defaults: format
// csv, compression none. Times are normalised to UTC microseconds (what
// PostgreSQL stores), so that equal requests have equal digests.
func DecodeRequest(body []byte) (Request, *problem.Problem) {
	var req Request
	if de := problem.Decode(body, &req); de != nil {
		return req, de.Problem()
	}
	if req.Format == "" {
		req.Format = FormatCSV
	}
	if req.Compression == "" {
		req.Compression = CompressionNone
	}
	if p := req.validate(); p != nil {
		return req, p
	}
	for _, t := range []*time.Time{req.From, req.To} {
		if t != nil {
			*t = t.UTC().Truncate(time.Microsecond)
		}
	}
	return req, nil
}

// Time bounds of a range: PostgreSQL's timestamptz spans 4713 BC to
// 294276 AD; the API keeps to years 1..9999 so that RFC 3339 round-trips.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

func (req *Request) validate() *problem.Problem {
	bad := func(ptr, format string, args ...any) *problem.Problem {
		return problem.New(problem.CodeInvalidRequest, fmt.Sprintf(format, args...)).With("pointer", ptr)
	}
	switch req.Format {
	case FormatCSV, FormatJSONL:
	default:
		return bad("/format", "unknown format %q (want csv or jsonl)", req.Format)
	}
	switch req.Compression {
	case CompressionNone, CompressionGzip:
	default:
		return bad("/compression", "unknown compression %q (want none or gzip)", req.Compression)
	}
	switch req.Kind {
	case KindEntries:
		if req.AccountID != "" && !ledger.ValidAccountID(req.AccountID) {
			return problem.New(problem.CodeInvalidAccount, "account_id does not match the account id pattern").With("pointer", "/account_id")
		}
	case KindTransactions, KindAccounts:
		if req.AccountID != "" {
			return bad("/account_id", "account_id applies to kind entries only")
		}
	case "":
		return bad("/kind", "kind is required (entries, transactions or accounts)")
	default:
		return bad("/kind", "unknown kind %q (want entries, transactions or accounts)", req.Kind)
	}
	if req.Kind == KindAccounts {
		if req.From != nil || req.To != nil {
			return bad("/from", "kind accounts takes no range: balances are as of the export's cut-off")
		}
		return nil
	}
	switch {
	case req.From == nil:
		return bad("/from", "from is required for kind %s (RFC 3339 time)", req.Kind)
	case req.To == nil:
		return bad("/to", "to is required for kind %s (RFC 3339 time)", req.Kind)
	case req.From.Before(minTime) || req.From.After(maxTime):
		return bad("/from", "from is out of range (years 1 to 9999)")
	case req.To.Before(minTime) || req.To.After(maxTime):
		return bad("/to", "to is out of range (years 1 to 9999)")
	case !req.From.Before(*req.To):
		return bad("/to", "the range is empty or inverted: to must be after from")
	}
	return nil
}

// digest identifies an export request: equal for identical requests of a
// tenant, so a repeated click finds the queued or running job.
func (req *Request) digest() []byte {
	h := sha256.New()
	field := func(s string) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	ts := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	for _, s := range []string{req.Kind, req.AccountID, ts(req.From), ts(req.To), req.Format, req.Compression} {
		field(s)
	}
	return h.Sum(nil)
}

// Job is one export as stored.
type Job struct {
	Tenant        string
	ID            string
	Request       Request
	Cutoff        time.Time
	ChunkRows     int
	Queue         string
	RowsEstimated int64
	State         string
	ClaimedBy     string
	Attempts      int
	Stalled       int // claims since the last checkpoint (the attempt cap applies to these)
	ChunksDone    int64
	RowsWritten   int64
	FileOffset    int64
	LastKey       []string
	HashState     []byte
	SHA256        string
	Error         string
	CreatedAt     time.Time
	StartedAt     *time.Time
	FinishedAt    *time.Time
}

// finished reports whether the job reached a final state.
func (j *Job) finished() bool {
	switch j.State {
	case StateQueued, StateRunning:
		return false
	}
	return true
}

// fileName is the file's name under the export directory.
func (j *Job) fileName() string {
	name := j.ID + "." + j.Request.Format
	if j.Request.Compression == CompressionGzip {
		name += ".gz"
	}
	return name
}

// contentType is the media type of the file.
func (j *Job) contentType() string {
	switch {
	case j.Request.Compression == CompressionGzip:
		return "application/gzip"
	case j.Request.Format == FormatJSONL:
		return "application/x-ndjson"
	}
	return "text/csv; charset=utf-8"
}
