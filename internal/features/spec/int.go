package spec

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

// Int is an exact signed integer whose magnitude is at most 2^128-1, the
// range of the ledger's amounts with a sign. It is a comparable value type
// (== is numeric equality: zero has one representation) and its zero value
// is 0.
type Int struct {
	neg bool // never true when mag is zero
	mag amount.Uint128
}

// ErrIntRange means a well-formed integer whose magnitude exceeds 2^128-1.
var ErrIntRange = errors.New("integer outside ±(2^128-1)")

// ErrIntSyntax means the text is not a canonical decimal integer.
var ErrIntSyntax = errors.New("not a canonical decimal integer")

// IntFromInt64 returns v as an Int.
func IntFromInt64(v int64) Int {
	if v < 0 {
		// -v overflows for MinInt64; uint64(-(v+1))+1 does not.
		return Int{neg: true, mag: amount.FromUint64(uint64(-(v + 1)) + 1)}
	}
	return Int{mag: amount.FromUint64(uint64(v))}
}

// IntFromUint128 returns the non-negative Int u (a ledger amount).
func IntFromUint128(u amount.Uint128) Int { return Int{mag: u} }

// MaxInt returns 2^128-1 and MinInt -(2^128-1), the ends of Int's range.
func MaxInt() Int { return Int{mag: amount.Max()} }

// MinInt returns -(2^128-1).
func MinInt() Int { return Int{neg: true, mag: amount.Max()} }

// ParseInt parses an optional '-' followed by a canonical decimal (no
// leading zeros, no '+', no fraction or exponent). "-0" is refused so that
// every Int has one spelling.
func ParseInt(s string) (Int, error) {
	digits, neg := strings.CutPrefix(s, "-")
	mag, err := amount.Parse(digits)
	switch {
	case errors.Is(err, amount.ErrRange):
		return Int{}, fmt.Errorf("integer %s: %w", quoteShort(s), ErrIntRange)
	case err != nil:
		return Int{}, fmt.Errorf("integer %s: %w", quoteShort(s), ErrIntSyntax)
	case neg && mag.IsZero():
		return Int{}, fmt.Errorf("integer %s: %w", quoteShort(s), ErrIntSyntax)
	}
	return Int{neg: neg, mag: mag}, nil
}

// String returns the canonical decimal form, the form ParseInt accepts.
func (i Int) String() string { return string(i.AppendText(nil)) }

// AppendText appends the canonical decimal form of i to dst.
func (i Int) AppendText(dst []byte) []byte {
	if i.neg {
		dst = append(dst, '-')
	}
	return i.mag.AppendDecimal(dst)
}

// MarshalJSON encodes i as a JSON number with every digit.
func (i Int) MarshalJSON() ([]byte, error) { return i.AppendText(nil), nil }

// UnmarshalJSON reads a JSON number (or a JSON string holding one)
// written as ParseInt accepts.
func (i *Int) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := ParseInt(s)
	if err != nil {
		return err
	}
	*i = v
	return nil
}

// Cmp returns -1, 0 or +1 as i is less than, equal to or greater than j.
func (i Int) Cmp(j Int) int {
	switch {
	case i.neg && !j.neg:
		return -1
	case !i.neg && j.neg:
		return 1
	case i.neg:
		return j.mag.Cmp(i.mag)
	}
	return i.mag.Cmp(j.mag)
}

// Sign returns -1, 0 or +1.
func (i Int) Sign() int {
	switch {
	case i.neg:
		return -1
	case i.mag.IsZero():
		return 0
	}
	return 1
}

// Magnitude returns |i| and whether i is negative.
func (i Int) Magnitude() (amount.Uint128, bool) { return i.mag, i.neg }

// IntFromMagnitude builds an Int from |i| and its sign; a negative zero
// becomes 0.
func IntFromMagnitude(mag amount.Uint128, neg bool) Int {
	return Int{neg: neg && !mag.IsZero(), mag: mag}
}

// maxQuoted bounds how much of a rejected input an error message quotes.
const maxQuoted = 48

func quoteShort(s string) string {
	if len(s) > maxQuoted {
		return fmt.Sprintf("%q… (%d bytes)", s[:maxQuoted], len(s))
	}
	return fmt.Sprintf("%q", s)
}
