package amount

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/jackc/pgx/v5/pgtype"
)

// ErrNull means a NULL was scanned into a Uint128. A nullable numeric column
// scans into a *Uint128, which pgx sets to nil on NULL.
var ErrNull = errors.New("amount is NULL")

var (
	_ pgtype.NumericScanner = (*Uint128)(nil)
	_ pgtype.NumericValuer  = Uint128{}
)

// NumericValue implements pgtype.NumericValuer, so a Uint128 can be a query
// or CopyFrom argument for a numeric column.
func (a Uint128) NumericValue() (pgtype.Numeric, error) {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.Hi)
	binary.BigEndian.PutUint64(b[8:], a.Lo)
	return pgtype.Numeric{Int: new(big.Int).SetBytes(b[:]), Valid: true}, nil
}

// ScanNumeric implements pgtype.NumericScanner. It accepts only a finite,
// non-negative integer at most 2^128-1, in any Int×10^Exp spelling (1500 may
// arrive as 15×10^2 or 150000×10^-2). NULL returns ErrNull; anything else
// returns an error wrapping ErrRange. On error a is left unchanged.
func (a *Uint128) ScanNumeric(n pgtype.Numeric) error {
	v, err := fromNumeric(n)
	if err != nil {
		return fmt.Errorf("amount: scan numeric: %w", err)
	}
	*a = v
	return nil
}

func fromNumeric(n pgtype.Numeric) (Uint128, error) {
	switch {
	case !n.Valid:
		return Uint128{}, ErrNull
	case n.NaN:
		return Uint128{}, fmt.Errorf("NaN: %w", ErrRange)
	case n.InfinityModifier == pgtype.Infinity:
		return Uint128{}, fmt.Errorf("numeric infinity: %w", ErrRange)
	case n.InfinityModifier == pgtype.NegativeInfinity:
		return Uint128{}, fmt.Errorf("-Infinity: %w", ErrRange)
	case n.Int == nil || n.Int.Sign() == 0:
		return Uint128{}, nil // pgx encodes a nil Int as 0; so do we.
	case n.Int.Sign() < 0:
		return Uint128{}, fmt.Errorf("%s is negative: %w", describe(n), ErrRange)
	}
	v, err := integerValue(n)
	if err != nil {
		return Uint128{}, err
	}
	if v.BitLen() > 128 {
		return Uint128{}, fmt.Errorf("%s is above 2^128-1: %w", describe(n), ErrRange)
	}
	var b [16]byte
	v.FillBytes(b[:])
	return Uint128{Hi: binary.BigEndian.Uint64(b[:8]), Lo: binary.BigEndian.Uint64(b[8:])}, nil
}

// integerValue returns Int×10^Exp for a positive Int, or an error if that is
// not an integer. Exp is bounded before any power of ten is built, so a
// hostile exponent costs nothing: a positive Int times 10^39 or more is
// above 2^128-1 ≈ 3.4 × 10^38, and 10^k > 2^k > Int when k ≥ Int.BitLen(),
// so such a 10^k cannot divide Int.
func integerValue(n pgtype.Numeric) (*big.Int, error) {
	switch {
	case n.Exp == 0:
		return n.Int, nil
	case n.Exp > 0:
		if n.Exp >= maxDigits {
			return nil, fmt.Errorf("%s is above 2^128-1: %w", describe(n), ErrRange)
		}
		return new(big.Int).Mul(n.Int, bigPow10(int64(n.Exp))), nil
	}
	k := -int64(n.Exp)
	if k >= int64(n.Int.BitLen()) {
		return nil, fmt.Errorf("%s is not an integer: %w", describe(n), ErrRange)
	}
	q, r := new(big.Int).QuoRem(n.Int, bigPow10(k), new(big.Int))
	if r.Sign() != 0 {
		return nil, fmt.Errorf("%s is not an integer: %w", describe(n), ErrRange)
	}
	return q, nil
}

func bigPow10(k int64) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(k), nil)
}

// describe spells n as Int×10^Exp for an error message, with Int clipped to
// maxQuotedInput digits: a numeric can have 131,072 of them.
func describe(n pgtype.Numeric) string {
	s := n.Int.String()
	if len(s) > maxQuotedInput {
		s = fmt.Sprintf("%s...(%d digits)", s[:maxQuotedInput], len(s))
	}
	return fmt.Sprintf("%se%d", s, n.Exp)
}
