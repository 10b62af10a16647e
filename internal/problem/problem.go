// Package problem writes HTTP errors as RFC 9457 problem details
// (application/problem+json) with a stable machine-readable code.
//
// Clients branch on Code, never on Title or Detail: codes are part of the API
// contract and never change meaning once published.
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// ContentType is the media type of every error response.
const ContentType = "application/problem+json"

// Problem is one RFC 9457 problem document. Extensions carry extra members
// (for example "stage" and "reason" on overload errors, "items" on batch errors).
type Problem struct {
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Status     int            `json:"status"`
	Code       string         `json:"code"`
	Detail     string         `json:"detail,omitempty"`
	Instance   string         `json:"instance,omitempty"`
	Extensions map[string]any `json:"-"`
}

// New builds a problem for code, one of the table's (codes.go): its status
// comes from the table and its type URI from the code, a stable identifier
// documented in the API reference. An unknown code panics.
func New(code, detail string) *Problem {
	status := Status(code)
	return &Problem{
		Type:   "https://bulwark.dev/problems/" + code,
		Title:  http.StatusText(status),
		Status: status,
		Code:   code,
		Detail: detail,
	}
}

// With adds an extension member and returns p for chaining.
func (p *Problem) With(key string, value any) *Problem {
	if p.Extensions == nil {
		p.Extensions = make(map[string]any, 2)
	}
	p.Extensions[key] = value
	return p
}

// Error lets a Problem travel as an error through handler code.
func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// MarshalJSON flattens extensions next to the standard members, as RFC 9457
// section 3.2 requires.
func (p *Problem) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, 6+len(p.Extensions))
	for k, v := range p.Extensions {
		m[k] = v
	}
	m["type"] = p.Type
	m["title"] = p.Title
	m["status"] = p.Status
	m["code"] = p.Code
	if p.Detail != "" {
		m["detail"] = p.Detail
	}
	if p.Instance != "" {
		m["instance"] = p.Instance
	}
	return json.Marshal(m)
}

// Write sends p. retryAfter > 0 adds a Retry-After header (whole seconds,
// rounded up, at least 1) as 429 and 503 answers need.
func Write(w http.ResponseWriter, p *Problem, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	if retryAfter > 0 {
		secs := int((retryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p) // the client is gone if this fails; nothing to do
}

// Send is Write of New(code, detail) with no Retry-After.
func Send(w http.ResponseWriter, code, detail string) {
	Write(w, New(code, detail), 0)
}

// WriteJSON sends v as an application/json answer with status. Answers are
// per request and may hold balances, so they are never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client is gone if this fails; nothing to do
}

// Answer is an error that knows its own problem document and Retry-After
// delay (0: none), such as an admission rejection, so that a handler can
// answer it without importing the package that made it.
type Answer interface {
	error
	Answer() (*Problem, time.Duration)
}
