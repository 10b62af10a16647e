package control

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Type is the type of a setting's value.
type Type uint8

// Setting types. The zero Type is invalid so that a Key without a Type is
// caught by Define.
const (
	Int      Type = iota + 1 // int64, decimal
	Float                    // float64, finite
	Bool                     // true or false
	Duration                 // time.Duration in Go syntax ("250ms", "2s")
	Text                     // UTF-8 text up to MaxTextBytes (rule tables, JSON)
)

// MaxTextBytes bounds a Text value: a rule table of ~500 rules × ~120 B
// fits, and a full reload of every override stays a few MB.
const MaxTextBytes = 64 << 10

// MaxKeyBytes bounds a setting key's name.
const MaxKeyBytes = 128

func (t Type) String() string {
	switch t {
	case Int:
		return "int"
	case Float:
		return "float"
	case Bool:
		return "bool"
	case Duration:
		return "duration"
	case Text:
		return "text"
	}
	return "invalid"
}

// Value is one typed setting value. The zero Value is invalid.
type Value struct {
	typ Type
	i   int64 // Int, Bool (0/1), Duration (ns)
	f   float64
	s   string // Text
}

// Type returns the value's type.
func (v Value) Type() Type { return v.typ }

// Int returns an Int value (or a Duration's nanoseconds).
func (v Value) Int() int64 { return v.i }

// Float returns a Float value, or an Int value converted.
func (v Value) Float() float64 {
	if v.typ == Int {
		return float64(v.i)
	}
	return v.f
}

// Bool returns a Bool value.
func (v Value) Bool() bool { return v.i != 0 }

// Duration returns a Duration value.
func (v Value) Duration() time.Duration { return time.Duration(v.i) }

// Text returns a Text value.
func (v Value) Text() string { return v.s }

// String returns the canonical text form: ParseValue(v.Type(), v.String())
// returns v again. It is the form stored in the database.
func (v Value) String() string {
	switch v.typ {
	case Int:
		return strconv.FormatInt(v.i, 10)
	case Float:
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	case Bool:
		return strconv.FormatBool(v.i != 0)
	case Duration:
		return time.Duration(v.i).String()
	case Text:
		return v.s
	}
	return ""
}

// number returns the value as a float64 for range checks.
func (v Value) number() (float64, bool) {
	switch v.typ {
	case Int:
		return float64(v.i), true
	case Float:
		return v.f, true
	case Duration:
		return time.Duration(v.i).Seconds(), true
	}
	return 0, false
}

// IntValue, FloatValue, BoolValue, DurationValue and TextValue build values.
func IntValue(i int64) Value              { return Value{typ: Int, i: i} }
func FloatValue(f float64) Value          { return Value{typ: Float, f: f} }
func DurationValue(d time.Duration) Value { return Value{typ: Duration, i: int64(d)} }
func TextValue(s string) Value            { return Value{typ: Text, s: s} }
func BoolValue(b bool) Value {
	v := Value{typ: Bool}
	if b {
		v.i = 1
	}
	return v
}

// ParseValue parses s as a value of type t. Surrounding spaces are trimmed
// for every type but Text, whose bytes are kept as given.
func ParseValue(t Type, s string) (Value, error) {
	if t != Text {
		s = strings.TrimSpace(s)
	}
	switch t {
	case Int:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%w: %q is not an integer", ErrInvalidValue, s)
		}
		return IntValue(i), nil
	case Float:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(s, "xXpP_") {
			return Value{}, fmt.Errorf("%w: %q is not a finite decimal number", ErrInvalidValue, s)
		}
		if f == 0 {
			f = 0 // fold -0 so that the canonical form is "0"
		}
		return FloatValue(f), nil
	case Bool:
		switch s {
		case "true":
			return BoolValue(true), nil
		case "false":
			return BoolValue(false), nil
		}
		return Value{}, fmt.Errorf("%w: %q is not true or false", ErrInvalidValue, s)
	case Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return Value{}, fmt.Errorf("%w: %q is not a duration such as 250ms or 2s", ErrInvalidValue, s)
		}
		return DurationValue(d), nil
	case Text:
		if len(s) > MaxTextBytes {
			return Value{}, fmt.Errorf("%w: text of %d bytes exceeds %d", ErrInvalidValue, len(s), MaxTextBytes)
		}
		if !utf8.ValidString(s) {
			return Value{}, fmt.Errorf("%w: text is not valid UTF-8", ErrInvalidValue)
		}
		return TextValue(s), nil
	}
	return Value{}, fmt.Errorf("%w: unknown type %d", ErrInvalidValue, t)
}

// ParseAssignment splits "key=value" as typed on a command line. The key is
// trimmed and must be a well-formed key name; the value is everything after
// the first '=' (it may itself contain '=' and may be empty).
func ParseAssignment(s string) (key, value string, err error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("%w: %q is not key=value", ErrBadRequest, s)
	}
	k = strings.TrimSpace(k)
	if err := checkKeyName(k); err != nil {
		return "", "", err
	}
	return k, v, nil
}

// checkKeyName accepts dot-separated lower-case segments of [a-z0-9_]:
// "tasks.recompute.rate_per_partition".
func checkKeyName(k string) error {
	if k == "" || len(k) > MaxKeyBytes {
		return fmt.Errorf("%w: key name must be 1 to %d bytes", ErrUnknownKey, MaxKeyBytes)
	}
	for _, seg := range strings.Split(k, ".") {
		if seg == "" {
			return fmt.Errorf("%w: %q has an empty segment", ErrUnknownKey, k)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return fmt.Errorf("%w: %q: names use a-z, 0-9, '_' and '.'", ErrUnknownKey, k)
			}
		}
	}
	return nil
}
