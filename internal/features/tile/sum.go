package tile

import (
	"math/big"
	"math/bits"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

// acc is a 256-bit two's complement accumulator, little-endian words. A
// sum of n integers of magnitude below 2^128 stays below 2^(128+log2 n),
// so 256 bits hold the sum of 2^127 maxima: unreachable, and add still
// reports overflow rather than wrap.
type acc [4]uint64

func (a acc) negative() bool { return a[3]>>63 == 1 }

// fromInt returns i as an acc.
func fromInt(i spec.Int) acc {
	mag, neg := i.Magnitude()
	a := acc{mag.Lo, mag.Hi}
	if neg {
		a = a.neg()
	}
	return a
}

func (a acc) neg() acc {
	var r acc
	var c uint64 = 1
	for k := range a {
		r[k], c = bits.Add64(^a[k], 0, c)
	}
	return r
}

// add returns a+b and false on signed overflow.
func (a acc) add(b acc) (acc, bool) {
	var r acc
	var c uint64
	for k := range a {
		r[k], c = bits.Add64(a[k], b[k], c)
	}
	// Overflow iff the operands share a sign that the result lacks.
	ok := a.negative() != b.negative() || r.negative() == a.negative()
	return r, ok
}

// big returns a as a big.Int (for results only: not on the hot path).
func (a acc) big() *big.Int {
	neg := a.negative()
	if neg {
		a = a.neg()
	}
	words := make([]big.Word, 0, 8)
	for _, w := range a {
		if bits.UintSize == 32 {
			words = append(words, big.Word(w), big.Word(w>>32))
		} else {
			words = append(words, big.Word(w))
		}
	}
	z := new(big.Int).SetBits(words)
	if neg {
		z.Neg(z)
	}
	return z
}
