package amount

import (
	"encoding/json"
	"fmt"
)

var (
	_ json.Marshaler   = Uint128{}
	_ json.Unmarshaler = (*Uint128)(nil)
)

// MarshalJSON encodes a as a JSON string holding its canonical decimal, for
// example "1500".
func (a Uint128) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, maxDigits+2)
	b = append(b, '"')
	b = a.AppendDecimal(b)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts only a JSON string holding a canonical decimal.
// JSON numbers (123, 1.5, 1e3), null, escapes and anything else are
// rejected with an error wrapping ErrSyntax or ErrRange, and a is left
// unchanged. encoding/json leaves a *Uint128 field nil on null without
// calling this, which is how an optional amount is spelled.
func (a *Uint128) UnmarshalJSON(data []byte) error {
	n := len(data)
	if n < 2 || data[0] != '"' || data[n-1] != '"' {
		return fmt.Errorf("amount: decode JSON %s: want a string holding a decimal: %w",
			quote(data), ErrSyntax)
	}
	v, err := parseDecimal(data[1 : n-1])
	if err != nil {
		return fmt.Errorf("amount: decode JSON %s: %w", quote(data), err)
	}
	*a = v
	return nil
}
