package amount

import "math/bits"

// Uint128 is an unsigned 128-bit integer: Hi<<64 | Lo. It is a comparable
// value type and its zero value is 0.
type Uint128 struct {
	Hi, Lo uint64
}

// FromUint64 returns v as a Uint128.
func FromUint64(v uint64) Uint128 {
	return Uint128{Lo: v}
}

// Max returns 2^128-1, the largest amount. It is a function, not a variable,
// so no caller can change it.
func Max() Uint128 {
	return Uint128{Hi: ^uint64(0), Lo: ^uint64(0)}
}

// Add returns a+b. If the sum exceeds 2^128-1 it returns (0, false) and
// never a wrapped value.
func (a Uint128) Add(b Uint128) (Uint128, bool) {
	lo, carry := bits.Add64(a.Lo, b.Lo, 0)
	hi, carry := bits.Add64(a.Hi, b.Hi, carry)
	if carry != 0 {
		return Uint128{}, false
	}
	return Uint128{Hi: hi, Lo: lo}, true
}

// Sub returns a-b. If b > a it returns (0, false) and never a wrapped value.
func (a Uint128) Sub(b Uint128) (Uint128, bool) {
	lo, borrow := bits.Sub64(a.Lo, b.Lo, 0)
	hi, borrow := bits.Sub64(a.Hi, b.Hi, borrow)
	if borrow != 0 {
		return Uint128{}, false
	}
	return Uint128{Hi: hi, Lo: lo}, true
}

// Cmp returns -1 if a < b, 0 if a == b and +1 if a > b.
func (a Uint128) Cmp(b Uint128) int {
	switch {
	case a.Hi < b.Hi:
		return -1
	case a.Hi > b.Hi:
		return 1
	case a.Lo < b.Lo:
		return -1
	case a.Lo > b.Lo:
		return 1
	}
	return 0
}

// Less reports whether a < b.
func (a Uint128) Less(b Uint128) bool {
	return a.Hi < b.Hi || (a.Hi == b.Hi && a.Lo < b.Lo)
}

// IsZero reports whether a == 0.
func (a Uint128) IsZero() bool {
	return a.Hi == 0 && a.Lo == 0
}

// mulAdd64 returns a*m + c, or ok=false if the result exceeds 2^128-1.
func (a Uint128) mulAdd64(m, c uint64) (Uint128, bool) {
	carryLo, lo := bits.Mul64(a.Lo, m)
	overflow, hi := bits.Mul64(a.Hi, m)
	hi, carry := bits.Add64(hi, carryLo, 0)
	if overflow != 0 || carry != 0 {
		return Uint128{}, false
	}
	return Uint128{Hi: hi, Lo: lo}.Add(FromUint64(c))
}

// divMod64 returns a/d and a%d. d must not be 0.
func (a Uint128) divMod64(d uint64) (Uint128, uint64) {
	hi, r := a.Hi/d, a.Hi%d
	lo, r := bits.Div64(r, a.Lo, d) // r < d, so Div64 cannot panic.
	return Uint128{Hi: hi, Lo: lo}, r
}
