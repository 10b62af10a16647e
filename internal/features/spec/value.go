package spec

import "strconv"

// Kind is the type of a Value.
type Kind uint8

// The kinds of event values. KindNone is the zero Value's kind (an absent
// value); decoded events never hold it.
const (
	KindNone Kind = iota
	KindString
	KindInt
	KindBool
)

func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindInt:
		return "integer"
	case KindBool:
		return "boolean"
	}
	return "none"
}

// Value is one event field's value: a string, an exact integer or a
// boolean. It is comparable: == holds when kind and value are equal.
type Value struct {
	kind Kind
	b    bool
	i    Int
	s    string
}

// StringValue returns s as a Value.
func StringValue(s string) Value { return Value{kind: KindString, s: s} }

// IntValue returns i as a Value.
func IntValue(i Int) Value { return Value{kind: KindInt, i: i} }

// BoolValue returns b as a Value.
func BoolValue(b bool) Value { return Value{kind: KindBool, b: b} }

// Kind returns v's kind.
func (v Value) Kind() Kind { return v.kind }

// Str returns the string of a KindString value, else "".
func (v Value) Str() string { return v.s }

// Int returns the integer of a KindInt value, else 0.
func (v Value) Int() Int { return v.i }

// Bool returns the boolean of a KindBool value, else false.
func (v Value) Bool() bool { return v.b }

// Key returns the canonical text of v: the string itself, the canonical
// decimal of an integer ("42", "-7"), "true" or "false". It is the entity
// key and what distinct_count hashes, so the integer 42 and the string
// "42" are the same entity and the same distinct value.
func (v Value) Key() string {
	switch v.kind {
	case KindString:
		return v.s
	case KindInt:
		return v.i.String()
	case KindBool:
		return strconv.FormatBool(v.b)
	}
	return ""
}

// AppendJSON appends v as JSON: a string, a number with every digit, or
// true/false (null for the zero Value).
func (v Value) AppendJSON(dst []byte) []byte {
	switch v.kind {
	case KindString:
		return appendJSONString(dst, v.s)
	case KindInt:
		return v.i.AppendText(dst)
	case KindBool:
		return strconv.AppendBool(dst, v.b)
	}
	return append(dst, "null"...)
}

// MarshalJSON encodes v as AppendJSON does.
func (v Value) MarshalJSON() ([]byte, error) { return v.AppendJSON(nil), nil }

// Compare orders values of one kind (integers numerically, strings
// bytewise, false before true); values of different kinds order by kind.
func (v Value) Compare(w Value) int {
	if v.kind != w.kind {
		if v.kind < w.kind {
			return -1
		}
		return 1
	}
	switch v.kind {
	case KindInt:
		return v.i.Cmp(w.i)
	case KindString:
		switch {
		case v.s < w.s:
			return -1
		case v.s > w.s:
			return 1
		}
	case KindBool:
		switch {
		case v.b == w.b:
			return 0
		case w.b:
			return -1
		}
		return 1
	}
	return 0
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping only what JSON
// requires (and <, >, & are left alone: the output is not HTML).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
