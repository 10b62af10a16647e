package client

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error is a problem the server answered (RFC 9457), a rejected item of a
// batch, or a request the client refused locally before sending it (Status
// and Code are then what the server would have answered). Branch on Code,
// or on the sentinels with errors.Is, never on Detail.
type Error struct {
	// Status is the HTTP status (for a batch item: the status the code
	// has when answered alone).
	Status int
	// Code is the stable problem code, e.g. "insufficient_funds".
	Code string
	// Detail is the human-readable explanation.
	Detail string
	// Index names the transaction of a batch the problem is about; -1
	// when none.
	Index int
	// Pointer is the RFC 6901 pointer to the offending value, if known.
	Pointer string
	// RetryAfter is the server's Retry-After (0 without one).
	RetryAfter time.Duration
	// Stage and Reason say why admission control turned a request away
	// (overloaded, quota_exceeded).
	Stage, Reason string
}

func (e *Error) Error() string {
	s := "bulwark: " + strconv.Itoa(e.Status) + " " + e.Code
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Index >= 0 {
		s += " (transaction " + strconv.Itoa(e.Index) + ")"
	}
	return s
}

// Is matches the sentinel of e's code: errors.Is(err, ErrInsufficientFunds).
func (e *Error) Is(target error) bool {
	s, ok := target.(*sentinel)
	return ok && s.code == e.Code
}

// Temporary reports whether retrying the same request (with the same
// idempotency keys) may succeed: 503 commit_failed, overloaded,
// shutting_down and read_failed. The client retries these itself.
//
// 429 quota_exceeded is not temporary in this sense: it says the caller
// spends more than its tenant's quota, and retrying in a loop keeps
// spending it; slow down instead (RetryAfter says for how long).
func (e *Error) Temporary() bool {
	switch e.Code {
	case "commit_failed", "overloaded", "shutting_down", "read_failed":
		return true
	}
	return false
}

// sentinel is the target errors.Is matches an *Error against.
type sentinel struct {
	code   string
	status int
}

func (s *sentinel) Error() string { return "bulwark: " + s.code }

// statusOf returns the HTTP status a code is answered with, 0 if unknown.
func statusOf(code string) int {
	for _, e := range sentinels {
		if s := e.(*sentinel); s.code == code { //nolint:errorlint // the table holds *sentinel only
			return s.status
		}
	}
	return 0
}

// newError builds a local rejection with the status the server gives code.
func newError(code string, index int, format string, args ...any) *Error {
	return &Error{Status: statusOf(code), Code: code, Detail: fmt.Sprintf(format, args...), Index: index}
}

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("bulwark: client closed")

// problemBody is the JSON of a problem answer.
type problemBody struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Detail  string `json:"detail"`
	Index   *int   `json:"index"`
	Pointer string `json:"pointer"`
	Stage   string `json:"stage"`
	Reason  string `json:"reason"`
}

func (p *problemBody) toError(status int, h http.Header) *Error {
	e := &Error{Status: status, Code: p.Code, Detail: p.Detail, Index: -1, Pointer: p.Pointer, Stage: p.Stage, Reason: p.Reason}
	if p.Index != nil {
		e.Index = *p.Index
	}
	if e.Code == "" {
		e.Code = "internal"
		if e.Detail == "" {
			e.Detail = "HTTP " + strconv.Itoa(status) + " without a problem body"
		}
	}
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}
