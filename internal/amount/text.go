package amount

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Every error this package returns wraps exactly one of
// them, with context; test with errors.Is.
var (
	// ErrSyntax means the input is not a canonical decimal amount (see the
	// package doc), or not a JSON string holding one.
	ErrSyntax = errors.New("not a canonical decimal amount")
	// ErrRange means the input is a well-formed number that is not an amount:
	// above 2^128-1, or (from PostgreSQL) negative, fractional, NaN or
	// infinite.
	ErrRange = errors.New("outside the amount range [0, 2^128-1]")
)

const (
	// maxDigits is the length of the largest amount,
	// 2^128-1 = 340282366920938463463374607431768211455.
	maxDigits = 39
	// chunkDigits is how many decimal digits fit a uint64 without
	// overflow: 10^19 < 2^64 ≈ 1.8 × 10^19 < 10^20. Parse and AppendDecimal
	// work in base 10^19, so a 39-digit amount takes three chunks.
	chunkDigits = 19
	chunkBase   = 10_000_000_000_000_000_000 // 10^19
	// maxQuotedInput bounds how much of a rejected input an error message
	// quotes, so a hostile megabyte-long "amount" does not end up in logs.
	maxQuotedInput = 48
)

// pow10 holds 10^0 .. 10^19.
var pow10 = [chunkDigits + 1]uint64{
	1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
}

// Parse parses the canonical decimal form of an amount (see the package
// doc). It does not allocate unless it returns an error.
func Parse(s string) (Uint128, error) {
	v, err := parseDecimal(s)
	if err != nil {
		return Uint128{}, fmt.Errorf("amount: parse %s: %w", quote(s), err)
	}
	return v, nil
}

// parseDecimal is Parse without the context on its errors, for strings and
// for the inside of JSON strings alike.
func parseDecimal[T string | []byte](s T) (Uint128, error) {
	if err := checkSyntax(s); err != nil {
		return Uint128{}, err
	}
	if len(s) > maxDigits {
		return Uint128{}, fmt.Errorf("%d digits: %w", len(s), ErrRange)
	}
	var v Uint128
	for i := 0; i < len(s); {
		n := min(len(s)-i, chunkDigits)
		var chunk uint64
		for _, c := range []byte(s[i : i+n]) {
			chunk = chunk*10 + uint64(c-'0')
		}
		var ok bool
		if v, ok = v.mulAdd64(pow10[n], chunk); !ok {
			return Uint128{}, ErrRange
		}
		i += n
	}
	return v, nil
}

// checkSyntax reports why s is not 1 or more ASCII digits without a leading
// zero. Length is checked by the caller, so that an over-long but
// well-formed number is ErrRange, like strconv.
func checkSyntax[T string | []byte](s T) error {
	if len(s) == 0 {
		return fmt.Errorf("empty: %w", ErrSyntax)
	}
	for i, c := range []byte(s) {
		if c < '0' || c > '9' {
			return fmt.Errorf("byte %q at offset %d: %w", c, i, ErrSyntax)
		}
	}
	if s[0] == '0' && len(s) > 1 {
		return fmt.Errorf("leading zero: %w", ErrSyntax)
	}
	return nil
}

// quote returns s quoted for an error message, clipped to maxQuotedInput
// bytes.
func quote[T string | []byte](s T) string {
	if len(s) <= maxQuotedInput {
		return strconv.Quote(string(s))
	}
	return strconv.Quote(string(s[:maxQuotedInput])) + fmt.Sprintf("... (%d bytes)", len(s))
}

// String returns a in canonical decimal.
func (a Uint128) String() string {
	var buf [maxDigits]byte
	return string(a.AppendDecimal(buf[:0]))
}

// AppendDecimal appends a in canonical decimal to dst and returns the
// extended slice. It does not allocate when dst has room for 39 more bytes.
func (a Uint128) AppendDecimal(dst []byte) []byte {
	if a.Hi == 0 {
		return strconv.AppendUint(dst, a.Lo, 10)
	}
	// a ≥ 2^64 > 10^19, so a has 20 to 39 digits: top·10^38 + mid·10^19 + low
	// with top ≤ ⌊(2^128-1)/10^38⌋ = 3.
	q, low := a.divMod64(chunkBase)
	top, mid := q.divMod64(chunkBase)
	if top.Hi != 0 || top.Lo > 3 {
		panic(fmt.Sprintf("amount: %#x/10^38 = %d, above 3", a, top.Lo))
	}
	if top.Lo != 0 {
		dst = strconv.AppendUint(dst, top.Lo, 10)
		dst = appendChunk(dst, mid)
	} else {
		dst = strconv.AppendUint(dst, mid, 10)
	}
	return appendChunk(dst, low)
}

// appendChunk appends v < 10^19 as exactly 19 digits, zero-padded.
func appendChunk(dst []byte, v uint64) []byte {
	var buf [chunkDigits]byte
	for i := len(buf) - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:]...)
}

// Net returns credits-debits as a signed decimal, for example "-42", for
// displaying a net balance. The magnitude is at most 2^128-1, so it cannot
// overflow.
func Net(credits, debits Uint128) string {
	var buf [1 + maxDigits]byte
	if d, ok := credits.Sub(debits); ok {
		return string(d.AppendDecimal(buf[:0]))
	}
	d, _ := debits.Sub(credits) // debits > credits: cannot underflow.
	return string(d.AppendDecimal(append(buf[:0], '-')))
}
