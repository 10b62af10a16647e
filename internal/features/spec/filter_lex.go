package spec

import (
	"fmt"
	"strings"
)

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokInt
	tokCmp
	tokAnd
	tokOr
	tokNot
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
	tokComma
)

type token struct {
	kind tokKind
	text string // identifier, unescaped string or integer digits
	op   op     // tokCmp
	pos  int
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of filter"
	case tokIdent:
		return fmt.Sprintf("%q", t.text)
	case tokString:
		return "a string"
	case tokInt:
		return "an integer"
	case tokCmp:
		return opText[t.op]
	}
	return [...]string{tokAnd: "&&", tokOr: "||", tokNot: "!", tokLParen: "(", tokRParen: ")",
		tokLBracket: "[", tokRBracket: "]", tokComma: ","}[t.kind]
}

type lexer struct{ pos int }

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' }
func isIdentByte(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }

// maxIdentBytes is the longest field name (^[a-z_][a-z0-9_]{0,62}$).
const maxIdentBytes = 63

// scan returns the next token of src, or an error text.
func (l *lexer) scan(src string) (token, string) {
	for l.pos < len(src) && (src[l.pos] == ' ' || src[l.pos] == '\t' || src[l.pos] == '\n' || src[l.pos] == '\r') {
		l.pos++
	}
	start := l.pos
	if l.pos >= len(src) {
		return token{kind: tokEOF, pos: start}, ""
	}
	c := src[l.pos]
	switch {
	case isIdentStart(c):
		for l.pos < len(src) && isIdentByte(src[l.pos]) {
			l.pos++
		}
		if l.pos-start > maxIdentBytes {
			return token{}, fmt.Sprintf("name of %d bytes at byte %d: at most %d", l.pos-start, start, maxIdentBytes)
		}
		return token{kind: tokIdent, text: src[start:l.pos], pos: start}, ""
	case c == '-' || c >= '0' && c <= '9':
		l.pos++
		for l.pos < len(src) && src[l.pos] >= '0' && src[l.pos] <= '9' {
			l.pos++
		}
		return token{kind: tokInt, text: src[start:l.pos], pos: start}, ""
	case c == '"':
		return l.str(src)
	}
	if t, ok := l.punct(src); ok {
		return t, ""
	}
	return token{}, fmt.Sprintf("unexpected character %q at byte %d", rune(c), start)
}

func (l *lexer) punct(src string) (token, bool) {
	two := ""
	if l.pos+1 < len(src) {
		two = src[l.pos : l.pos+2]
	}
	t := token{pos: l.pos}
	switch two {
	case "==", "!=", "<=", ">=":
		t.kind, t.op = tokCmp, map[string]op{"==": opEq, "!=": opNe, "<=": opLe, ">=": opGe}[two]
	case "&&":
		t.kind = tokAnd
	case "||":
		t.kind = tokOr
	}
	if t.kind != tokEOF {
		l.pos += 2
		return t, true
	}
	l.pos++
	switch src[t.pos] {
	case '<':
		t.kind, t.op = tokCmp, opLt
	case '>':
		t.kind, t.op = tokCmp, opGt
	case '!':
		t.kind = tokNot
	case '(':
		t.kind = tokLParen
	case ')':
		t.kind = tokRParen
	case '[':
		t.kind = tokLBracket
	case ']':
		t.kind = tokRBracket
	case ',':
		t.kind = tokComma
	default:
		l.pos--
		return t, false
	}
	return t, true
}

// str scans a string literal: any UTF-8 text but " and \, which are
// escaped as \" and \\; other escapes and raw control characters are
// refused (so a string has one spelling).
func (l *lexer) str(src string) (token, string) {
	start := l.pos
	l.pos++
	var b strings.Builder
	for l.pos < len(src) {
		c := src[l.pos]
		switch {
		case c == '"':
			l.pos++
			return token{kind: tokString, text: b.String(), pos: start}, ""
		case c == '\\':
			if l.pos+1 >= len(src) || (src[l.pos+1] != '"' && src[l.pos+1] != '\\') {
				return token{}, fmt.Sprintf("bad escape at byte %d: only \\\" and \\\\", l.pos)
			}
			b.WriteByte(src[l.pos+1])
			l.pos += 2
		case c < 0x20:
			return token{}, fmt.Sprintf("control character in string at byte %d", l.pos)
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	return token{}, fmt.Sprintf("unterminated string at byte %d", start)
}
