package tile

import (
	"math"
	"math/bits"
	"slices"
	"strconv"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

const (
	// maxExact is how many distinct values a state counts exactly (a
	// sorted set of 64-bit hashes, 2 KiB at most) before it switches to a
	// HyperLogLog sketch.
	maxExact = 256
	// hllPrecision is the sketch's precision p: 2^12 one-byte registers
	// (4 KiB), relative standard error 1.04/√4096 ≈ 1.6%.
	hllPrecision = 12
	hllRegisters = 1 << hllPrecision
	// hllMaxRank is the largest register value: 64−p bits of hash left,
	// plus one.
	hllMaxRank = 64 - hllPrecision + 1
)

// sketch is a HyperLogLog's registers.
type sketch [hllRegisters]uint8

// distinct counts distinct values by 64-bit hashes of their Key: exactly
// (up to hash collisions, p ≈ n²/2^65) while there are at most maxExact,
// then as a HyperLogLog estimate.
type distinct struct {
	exact []uint64 // sorted, no duplicates; nil once hll is set
	hll   *sketch
}

func (d *distinct) add(h uint64) {
	if d.hll != nil {
		d.hll.add(h)
		return
	}
	i, found := slices.BinarySearch(d.exact, h)
	if found {
		return
	}
	d.exact = slices.Insert(d.exact, i, h)
	if len(d.exact) > maxExact {
		d.toSketch()
	}
}

func (d *distinct) toSketch() {
	d.hll = new(sketch)
	for _, h := range d.exact {
		d.hll.add(h)
	}
	d.exact = nil
}

func (d *distinct) merge(o *distinct) {
	switch {
	case o.hll != nil:
		if d.hll == nil {
			d.toSketch()
		}
		for i, r := range o.hll {
			d.hll[i] = max(d.hll[i], r)
		}
	case d.hll != nil:
		for _, h := range o.exact {
			d.hll.add(h)
		}
	default:
		d.union(o.exact)
	}
}

// union merges the sorted set b into d.exact in place, from the back, in
// one pass (no per-element insertion), then switches to the sketch if the
// union is over maxExact.
func (d *distinct) union(b []uint64) {
	a := d.exact
	n := unionSize(a, b)
	if n == len(a) {
		return
	}
	a = slices.Grow(a, n-len(a))[:n]
	// Fill from the back: the union of the unread prefixes is at least as
	// long as a's unread prefix, so k never overtakes i.
	i, j := len(d.exact)-1, len(b)-1
	for k := n - 1; k >= 0; k-- {
		switch {
		case j < 0 || i >= 0 && a[i] > b[j]:
			a[k] = a[i]
			i--
		case i >= 0 && a[i] == b[j]:
			a[k] = a[i]
			i--
			j--
		default:
			a[k] = b[j]
			j--
		}
	}
	d.exact = a
	if len(a) > maxExact {
		d.toSketch()
	}
}

// unionSize returns the size of the union of two sorted sets.
func unionSize(a, b []uint64) int {
	n, i, j := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			i++
			j++
		}
		n++
	}
	return n + len(a) - i + len(b) - j
}

func (d *distinct) clone() distinct {
	c := distinct{exact: slices.Clone(d.exact)}
	if d.hll != nil {
		h := *d.hll
		c.hll = &h
	}
	return c
}

// estimate returns the number of distinct values: exact below maxExact,
// else HyperLogLog's estimate with linear counting for small cardinalities.
func (d *distinct) estimate() int64 {
	if d.hll == nil {
		return int64(len(d.exact))
	}
	const m = float64(hllRegisters)
	sum, zeros := 0.0, 0
	for _, r := range d.hll {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	alpha := 0.7213 / (1 + 1.079/m)
	e := alpha * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	return int64(math.Round(e))
}

func (h *sketch) add(x uint64) {
	i := x >> (64 - hllPrecision)
	// The rank of the remaining bits: leading zeros + 1, at most hllMaxRank.
	rank := uint8(bits.LeadingZeros64(x<<hllPrecision|1<<(hllPrecision-1)) + 1)
	h[i] = max(h[i], rank)
}

// hashValue hashes v's Key (FNV-1a, then murmur3's finalizer to spread
// the bits the sketch reads) without allocating.
func hashValue(v spec.Value) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	mix := func(b byte) { h = (h ^ uint64(b)) * prime }
	switch v.Kind() {
	case spec.KindString:
		s := v.Str()
		for i := 0; i < len(s); i++ {
			mix(s[i])
		}
	case spec.KindInt:
		var buf [48]byte
		for _, b := range v.Int().AppendText(buf[:0]) {
			mix(b)
		}
	case spec.KindBool:
		for _, b := range []byte(strconv.FormatBool(v.Bool())) {
			mix(b)
		}
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
