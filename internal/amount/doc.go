// Package amount owns the ledger's amount type: an unsigned 128-bit integer
// counted in an asset's minor units, with checked arithmetic and one strict
// text form.
//
// # Why 128 bits
//
// Amounts are integers in minor units, never floats. An asset with 18
// decimals (most ERC-20 tokens) puts 10^18 minor units in one whole unit, and
// int64 tops out at 2^63-1 ≈ 9.2 × 10^18, so a single balance of 9.3 tokens
// would overflow it. A u128 holds 2^128-1 ≈ 3.4 × 10^38 minor units, that is
// ≈ 3.4 × 10^20 whole units even at 18 decimals, which is the headroom
// TigerBeetle chose for the same reason. Amounts are unsigned: the direction
// of a movement is carried by debit and credit, not by a sign, and a net
// balance is shown with [Net].
//
// # Overflow
//
// Arithmetic never wraps. [Uint128.Add] and [Uint128.Sub] return ok=false
// (and a zero result) when the true result does not fit in [0, 2^128-1];
// callers must turn that into a rejected transfer, never ignore it. The hot
// path (Add, Sub, Cmp, Parse, AppendDecimal) uses math/bits only: no
// math/big and no heap allocation.
//
// # Text form
//
// The one text form of an amount is its canonical decimal: 1 to 39 ASCII
// digits, no sign, no leading zeros (except "0" itself), no spaces, no
// decimal point, no exponent, no digit separators. [Parse] accepts exactly
// the strings that [Uint128.String] produces, so every amount has one
// spelling, and rejects everything else with an error wrapping [ErrSyntax]
// (not that form) or [ErrRange] (that form, but above 2^128-1).
//
// In JSON an amount is a string holding that decimal ("1500"), never a JSON
// number: a JSON number is a float64 to many clients, which silently rounds
// above 2^53. JSON numbers, escapes inside the string and null are rejected;
// an optional amount is a *Uint128 field, which null leaves nil.
//
// # PostgreSQL
//
// Amounts are stored in numeric columns (numeric(39,0) fits every value).
// *Uint128 implements pgx's pgtype.NumericScanner and Uint128 implements
// pgtype.NumericValuer, so values pass directly as query arguments
// (including CopyFrom) and scan directly from numeric results. Scanning NULL
// returns [ErrNull] (scan into **Uint128 for a nullable column); scanning a
// negative, fractional, NaN, infinite or too large numeric returns an error
// wrapping [ErrRange]. Conversion to and from pgtype.Numeric goes through
// math/big, which is acceptable off the hot path.
package amount
