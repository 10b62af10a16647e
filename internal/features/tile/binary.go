package tile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/bulwark-ledger/bulwark/internal/amount"
	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

// stateVersion is the first byte of an encoded State. A new encoding gets
// a new version and UnmarshalBinary keeps reading the old ones.
const stateVersion = 1

// Flags of the encoding.
const (
	flagInts = 1 << iota
	flagStr
	flagLast
	flagSketch
	flagOverflow
	flagAll = flagInts | flagStr | flagLast | flagSketch | flagOverflow
)

// ErrCorrupt means bytes that are not an encoded State.
var ErrCorrupt = errors.New("tile: corrupt state encoding")

// MarshalBinary encodes s compactly (version 1):
//
//	version byte, flags byte, uvarint count,
//	[ints:   uvarint ints, sum 4×8 bytes LE, min, max (sign byte, hi, lo 8 bytes LE each)]
//	[str:    uvarint len + min, uvarint len + max]
//	[last:   kind byte, value, varint unix nanos, uvarint len + event id]
//	distinct: sketch: 4096 register bytes | exact: uvarint n, n×8 bytes LE ascending
func (s *State) MarshalBinary() ([]byte, error) {
	var flags byte
	if s.ints > 0 {
		flags |= flagInts
	}
	if s.hasStr {
		flags |= flagStr
	}
	if s.hasLast {
		flags |= flagLast
	}
	if s.distinct.hll != nil {
		flags |= flagSketch
	}
	if s.sumOverflow {
		flags |= flagOverflow
	}
	// Sized for what follows, so appending never grows it (growing was
	// most of this function's cost).
	n := 2 + 2*binary.MaxVarintLen64 + 8*len(s.distinct.exact)
	if s.ints > 0 {
		n += binary.MaxVarintLen64 + 8*len(s.sum) + 2*17
	}
	if s.hasStr {
		n += 2*binary.MaxVarintLen64 + len(s.minStr) + len(s.maxStr)
	}
	if s.hasLast {
		n += 1 + 17 + 3*binary.MaxVarintLen64 + len(s.last.Str()) + len(s.lastID)
	}
	if s.distinct.hll != nil {
		n += len(s.distinct.hll)
	}
	b := make([]byte, 0, n)
	b = append(b, stateVersion, flags)
	b = binary.AppendUvarint(b, uint64(s.count))
	if s.ints > 0 {
		b = binary.AppendUvarint(b, uint64(s.ints))
		for _, w := range s.sum {
			b = binary.LittleEndian.AppendUint64(b, w)
		}
		b = appendInt(appendInt(b, s.minInt), s.maxInt)
	}
	if s.hasStr {
		b = appendString(appendString(b, s.minStr), s.maxStr)
	}
	if s.hasLast {
		b = appendValue(b, s.last)
		b = binary.AppendVarint(b, s.lastTime)
		b = appendString(b, s.lastID)
	}
	if s.distinct.hll != nil {
		return append(b, s.distinct.hll[:]...), nil
	}
	b = binary.AppendUvarint(b, uint64(len(s.distinct.exact)))
	for _, h := range s.distinct.exact {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	return b, nil
}

func appendInt(b []byte, i spec.Int) []byte {
	mag, neg := i.Magnitude()
	sign := byte(0)
	if neg {
		sign = 1
	}
	b = append(b, sign)
	b = binary.LittleEndian.AppendUint64(b, mag.Hi)
	return binary.LittleEndian.AppendUint64(b, mag.Lo)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendValue(b []byte, v spec.Value) []byte {
	b = append(b, byte(v.Kind()))
	switch v.Kind() {
	case spec.KindInt:
		return appendInt(b, v.Int())
	case spec.KindString:
		return appendString(b, v.Str())
	case spec.KindBool:
		if v.Bool() {
			return append(b, 1)
		}
		return append(b, 0)
	}
	return b
}

// UnmarshalBinary decodes what MarshalBinary encoded, replacing s. Any
// other input gives an error wrapping ErrCorrupt (never a panic), and s is
// left unchanged.
func (s *State) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	if r.byte() != stateVersion {
		return fmt.Errorf("%w: unknown version", ErrCorrupt)
	}
	flags := r.byte()
	var n State
	n.count = r.count()
	if flags&^flagAll != 0 || r.err != nil {
		return fmt.Errorf("%w: header", ErrCorrupt)
	}
	if flags&flagInts != 0 {
		n.ints = r.count()
		for k := range n.sum {
			n.sum[k] = r.uint64()
		}
		n.minInt, n.maxInt = r.int(), r.int()
		n.sumOverflow = flags&flagOverflow != 0
		if n.ints == 0 || n.ints > n.count || n.minInt.Cmp(n.maxInt) > 0 {
			r.fail("integers")
		}
	}
	if flags&flagStr != 0 {
		n.hasStr, n.minStr, n.maxStr = true, r.string(), r.string()
		if n.minStr > n.maxStr {
			r.fail("strings")
		}
	}
	if flags&flagLast != 0 {
		n.hasLast, n.last, n.lastTime, n.lastID = true, r.value(), r.varint(), r.string()
	}
	r.distinct(&n.distinct, flags&flagSketch != 0, n.count)
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return r.err
	}
	*s = n
	return nil
}

// reader decodes; the first error sticks and later reads return zeros.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail("short")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n uint64) []byte {
	if uint64(len(r.b)) < n {
		r.fail("short")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) uint64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (r *reader) uvarint() uint64 { return readVarint(r, binary.Uvarint) }

func (r *reader) varint() int64 { return readVarint(r, binary.Varint) }

// readVarint reads one varint with decode (binary.Uvarint or Varint).
func readVarint[T uint64 | int64](r *reader, decode func([]byte) (T, int)) T {
	v, n := decode(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) count() int64 {
	v := r.uvarint()
	if v > math.MaxInt64 {
		r.fail("count")
		return 0
	}
	return int64(v)
}

func (r *reader) string() string { return string(r.bytes(r.uvarint())) }

func (r *reader) int() spec.Int {
	sign := r.byte()
	mag := amount.Uint128{Hi: r.uint64(), Lo: r.uint64()}
	if sign > 1 || sign == 1 && mag.IsZero() {
		r.fail("integer sign")
	}
	return spec.IntFromMagnitude(mag, sign == 1)
}

func (r *reader) value() spec.Value {
	switch spec.Kind(r.byte()) {
	case spec.KindInt:
		return spec.IntValue(r.int())
	case spec.KindString:
		return spec.StringValue(r.string())
	case spec.KindBool:
		b := r.byte()
		if b > 1 {
			r.fail("boolean")
		}
		return spec.BoolValue(b == 1)
	}
	r.fail("value kind")
	return spec.Value{}
}

func (r *reader) distinct(d *distinct, sketched bool, count int64) {
	if sketched {
		regs := r.bytes(hllRegisters)
		if regs == nil {
			return
		}
		d.hll = new(sketch)
		copy(d.hll[:], regs)
		if slices.Max(d.hll[:]) > hllMaxRank {
			r.fail("sketch register")
		}
		return
	}
	n := r.uvarint()
	if n > maxExact || n > uint64(count) {
		r.fail("distinct set size")
		return
	}
	for range n {
		h := r.uint64()
		if len(d.exact) > 0 && h <= d.exact[len(d.exact)-1] {
			r.fail("distinct set order")
			return
		}
		d.exact = append(d.exact, h)
	}
}
