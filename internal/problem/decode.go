package problem

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Request bodies are decoded strictly, so that Bulwark, PostgreSQL and any
// proxy or WAF in front of it read one body the same way, and so that a
// value PostgreSQL cannot store is refused before it can reach a commit
// batch shared with other tenants:
//
//   - the body must be valid UTF-8 (no silent U+FFFD: two different
//     idempotency keys must never decode to the same string);
//   - no string may hold U+0000 (text and jsonb columns refuse it, SQLSTATE
//     22021 / 22P05) or a lone UTF-16 surrogate escape;
//   - object member names are unique and match struct fields exactly (no
//     "last one wins", no case folding), and unknown members are refused;
//   - nesting is at most MaxDepth deep;
//   - exactly one JSON value, sent as application/json (or a +json type).
//
// The decoding itself is go-json-experiment/json (the encoding/json/v2
// candidate), whose defaults already refuse duplicate names and invalid
// UTF-8; scanBody adds the PostgreSQL-specific rules and names each failure.

// MaxDepth bounds the nesting of objects and arrays in a request body. The
// deepest API shape is 4 (batch → transactions → transaction → postings →
// posting); the rest leaves room for metadata, whose jsonb value
// PostgreSQL parses recursively.
const MaxDepth = 32

// DecodeError is a refused request body.
type DecodeError struct {
	Status int
	Code   string
	Detail string
	// Pointer is the RFC 6901 JSON pointer of the offending value when
	// known ("/transactions/3/postings/0/amount"), else "".
	Pointer string
	// Err is the underlying error, for callers that refine the code (an
	// amount's own syntax error, say).
	Err error
}

func (e *DecodeError) Error() string { return e.Code + ": " + e.Detail }
func (e *DecodeError) Unwrap() error { return e.Err }

// Problem converts e to a problem document (with the pointer, if known).
func (e *DecodeError) Problem() *Problem {
	p := New(e.Code, e.Detail)
	if e.Pointer != "" {
		p.With("pointer", e.Pointer)
	}
	return p
}

func bad(code, format string, args ...any) *DecodeError {
	return &DecodeError{Status: Status(code), Code: code, Detail: fmt.Sprintf(format, args...)}
}

// ReadBody checks that r carries JSON and reads its body, at most limit
// bytes. An empty body without a Content-Type is allowed (routes whose body
// is optional); Decode refuses it where a body is required.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *DecodeError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, bad(CodeBodyTooLarge, "request body over %d bytes", limit)
	}
	if err != nil {
		return nil, bad(CodeMalformedJSON, "read body: %v", err)
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" && len(body) == 0 {
		return body, nil
	}
	if !IsJSONContentType(ct) {
		return nil, bad(CodeUnsupportedMediaType, "Content-Type %q: send application/json (UTF-8)", ct)
	}
	return body, nil
}

// IsJSONContentType reports whether ct is application/json or an
// application/*+json type, with no charset other than UTF-8.
func IsJSONContentType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	if mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// Decode decodes body, one JSON value, into v under the strict rules above.
func Decode(body []byte, v any) *DecodeError {
	if len(body) == 0 {
		return bad(CodeMalformedJSON, "empty body: a JSON value is required")
	}
	if err := ScanBody(body); err != nil {
		return err
	}
	err := json.Unmarshal(body, v, json.RejectUnknownMembers(true))
	if err == nil {
		return nil
	}
	de := bad(CodeMalformedJSON, "%v", err)
	de.Err = err
	var se *json.SemanticError
	var sy *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		de.Pointer = string(se.JSONPointer)
	case errors.As(err, &sy):
		de.Pointer = string(sy.JSONPointer)
	}
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName):
		de.Code = CodeDuplicateMember
	case errors.Is(err, json.ErrUnknownName):
		de.Code = CodeUnknownMember
		de.Detail = fmt.Sprintf("unknown member %q (member names are case-sensitive)", de.Pointer)
	}
	return de
}

// ScanBody checks what the JSON parser allows but Bulwark refuses: invalid
// UTF-8, U+0000 and lone surrogates in strings, and nesting deeper than
// MaxDepth. It is one pass over the bytes; syntax errors are left to the
// parser (a malformed body may be reported by either).
func ScanBody(b []byte) *DecodeError {
	if !utf8.Valid(b) {
		return bad(CodeInvalidUTF8, "the body is not valid UTF-8")
	}
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			switch c {
			case '"':
				inString = true
			case '{', '[':
				if depth++; depth > MaxDepth {
					return bad(CodeNestingTooDeep, "objects and arrays nested deeper than %d", MaxDepth)
				}
			case '}', ']':
				depth--
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 < len(b) && b[i+1] == 'u' {
				n, err := checkEscape(b[i:])
				if err != nil {
					return err
				}
				i += n - 1
				continue
			}
			i++ // skip the escaped character
		}
	}
	return nil
}

// checkEscape checks the \u escape (backslash, u, four hex digits) at the
// start of b (and its pair, for
// a high surrogate) and returns how many bytes it spans. A malformed escape
// is left to the parser (0 error, length 2).
func checkEscape(b []byte) (int, *DecodeError) {
	r, ok := hex4(b)
	switch {
	case !ok:
		return 2, nil
	case r == 0:
		return 0, bad(CodeNULCharacter, `strings may not contain U+0000 ("\u0000")`)
	case r >= 0xDC00 && r <= 0xDFFF:
		return 0, bad(CodeInvalidUTF8, "lone low surrogate \\u%04x: not a Unicode character", r)
	case r >= 0xD800 && r <= 0xDBFF:
		if len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
			if lo, ok := hex4(b[6:]); ok && lo >= 0xDC00 && lo <= 0xDFFF {
				return 12, nil
			}
		}
		return 0, bad(CodeInvalidUTF8, "lone high surrogate \\u%04x: not a Unicode character", r)
	}
	return 6, nil
}

// hex4 parses the four hex digits of the \u escape at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 6 {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// ReadJSON is ReadBody then Decode: on failure it has written the problem
// and returns false.
func ReadJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	body, err := ReadBody(w, r, limit)
	if err == nil {
		err = Decode(body, v)
	}
	if err != nil {
		Write(w, err.Problem(), 0)
		return false
	}
	return true
}

// HasNUL reports whether s holds U+0000, which PostgreSQL text refuses
// (for values that reach the database from paths and query strings).
func HasNUL(s string) bool { return strings.IndexByte(s, 0) >= 0 }
