package spec

import (
	"fmt"

	"github.com/bulwark-ledger/bulwark/internal/problem"
)

// Aliases of the problem codes this package answers, so the code reads
// like the table it cites.
const (
	codeInvalidDefinition  = problem.CodeInvalidDefinition
	codeUnknownAggregation = problem.CodeUnknownAggregation
	codeWindowOutOfRange   = problem.CodeWindowOutOfRange
	codeInvalidFilter      = problem.CodeInvalidFilter
	codeUnknownField       = problem.CodeUnknownField
	codeFieldTypeMismatch  = problem.CodeFieldTypeMismatch
	codeInvalidEvent       = problem.CodeInvalidEvent
)

// invalid returns the *problem.DecodeError every validation error of this
// package is: the HTTP layer sends it as a 400 problem with its code and
// JSON pointer.
func invalid(code, pointer, format string, args ...any) *problem.DecodeError {
	return &problem.DecodeError{
		Status:  problem.Status(code),
		Code:    code,
		Detail:  fmt.Sprintf(format, args...),
		Pointer: pointer,
	}
}

// at returns err with its pointer prefixed by prefix (a pointer found
// inside a member gets the member's path in front).
func at(err error, prefix string) error {
	if de, ok := err.(*problem.DecodeError); ok { //nolint:errorlint // only our own unwrapped errors are re-pointed
		c := *de
		c.Pointer = prefix + c.Pointer
		return &c
	}
	return err
}

// pointerToken escapes a member name for a JSON pointer (RFC 6901).
func pointerToken(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '~':
			out = append(out, '~', '0')
		case '/':
			out = append(out, '~', '1')
		default:
			out = append(out, s[i])
		}
	}
	return string(out)
}
