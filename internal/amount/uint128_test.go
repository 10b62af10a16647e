package amount_test

import (
	"math/big"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

func TestAdd(t *testing.T) {
	maxV := amount.Max()
	tests := []struct {
		name   string
		a, b   amount.Uint128
		want   amount.Uint128
		wantOK bool
	}{
		{"zero", amount.Uint128{}, amount.Uint128{}, amount.Uint128{}, true},
		{"small", amount.FromUint64(2), amount.FromUint64(3), amount.FromUint64(5), true},
		{"carry into Hi", maxU64, one, two64, true},
		{"carry both", maxU64, maxU64, amount.Uint128{Hi: 1, Lo: ^uint64(0) - 1}, true},
		{"reach max", amount.Uint128{Hi: ^uint64(0)}, maxU64, maxV, true},
		{"max plus zero", maxV, amount.Uint128{}, maxV, true},
		{"max plus one", maxV, one, amount.Uint128{}, false},
		{"one plus max", one, maxV, amount.Uint128{}, false},
		{"max plus max", maxV, maxV, amount.Uint128{}, false},
		{"Hi overflow without Lo carry", amount.Uint128{Hi: 1 << 63}, amount.Uint128{Hi: 1 << 63}, amount.Uint128{}, false},
		{"overflow via Lo carry only", amount.Uint128{Hi: ^uint64(0), Lo: 1}, maxU64, amount.Uint128{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.a.Add(tt.b)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("%v.Add(%v) = %v, %t; want %v, %t", tt.a, tt.b, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestSub(t *testing.T) {
	maxV := amount.Max()
	tests := []struct {
		name   string
		a, b   amount.Uint128
		want   amount.Uint128
		wantOK bool
	}{
		{"zero", amount.Uint128{}, amount.Uint128{}, amount.Uint128{}, true},
		{"small", amount.FromUint64(5), amount.FromUint64(3), amount.FromUint64(2), true},
		{"equal", maxV, maxV, amount.Uint128{}, true},
		{"borrow from Hi", two64, one, maxU64, true},
		{"max minus max64", maxV, maxU64, amount.Uint128{Hi: ^uint64(0)}, true},
		{"zero minus one", amount.Uint128{}, one, amount.Uint128{}, false},
		{"max64 minus 2^64", maxU64, two64, amount.Uint128{}, false},
		{"borrow underflow", amount.Uint128{Hi: 1}, amount.Uint128{Hi: 1, Lo: 1}, amount.Uint128{}, false},
		{"zero minus max", amount.Uint128{}, maxV, amount.Uint128{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.a.Sub(tt.b)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("%v.Sub(%v) = %v, %t; want %v, %t", tt.a, tt.b, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestArithmeticAgainstBig checks Add, Sub, Cmp and Less against math/big on
// random operands.
func TestArithmeticAgainstBig(t *testing.T) {
	r := newRand(t)
	maxB := toBig(amount.Max())
	for range 100_000 {
		a, b := randAmount(r), randAmount(r)
		ab, bb := toBig(a), toBig(b)

		sum, ok := a.Add(b)
		wantSum := new(big.Int).Add(ab, bb)
		if wantOK := wantSum.Cmp(maxB) <= 0; ok != wantOK || (ok && toBig(sum).Cmp(wantSum) != 0) || (!ok && !sum.IsZero()) {
			t.Fatalf("%v.Add(%v) = %v, %t; want %v", a, b, sum, ok, wantSum)
		}
		diff, ok := a.Sub(b)
		wantDiff := new(big.Int).Sub(ab, bb)
		if wantOK := wantDiff.Sign() >= 0; ok != wantOK || (ok && toBig(diff).Cmp(wantDiff) != 0) || (!ok && !diff.IsZero()) {
			t.Fatalf("%v.Sub(%v) = %v, %t; want %v", a, b, diff, ok, wantDiff)
		}
		if got, want := a.Cmp(b), ab.Cmp(bb); got != want {
			t.Fatalf("%v.Cmp(%v) = %d, want %d", a, b, got, want)
		}
		if got, want := a.Less(b), ab.Cmp(bb) < 0; got != want {
			t.Fatalf("%v.Less(%v) = %t, want %t", a, b, got, want)
		}
	}
}

func TestCmp(t *testing.T) {
	tests := []struct {
		a, b amount.Uint128
		want int
	}{
		{amount.Uint128{}, amount.Uint128{}, 0},
		{one, amount.Uint128{}, 1},
		{amount.Uint128{}, one, -1},
		{maxU64, two64, -1}, // Hi decides even though Lo is larger
		{two64, maxU64, 1},
		{amount.Max(), amount.Max(), 0},
		{amount.Uint128{Hi: 1, Lo: 1}, amount.Uint128{Hi: 1, Lo: 2}, -1},
	}
	for _, tt := range tests {
		if got := tt.a.Cmp(tt.b); got != tt.want {
			t.Errorf("%v.Cmp(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got, want := tt.a.Less(tt.b), tt.want < 0; got != want {
			t.Errorf("%v.Less(%v) = %t, want %t", tt.a, tt.b, got, want)
		}
	}
}

func TestZeroValue(t *testing.T) {
	var z amount.Uint128
	if !z.IsZero() || z != amount.FromUint64(0) || z.String() != "0" {
		t.Errorf("zero value: IsZero %t, String %q", z.IsZero(), z.String())
	}
	if one.IsZero() || two64.IsZero() {
		t.Error("IsZero true for a non-zero value")
	}
	if got := amount.Max().String(); got != max128 {
		t.Errorf("Max() = %s, want %s", got, max128)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	a, b := amount.Max(), one
	s := max128
	buf := make([]byte, 0, 64)
	tests := []struct {
		name string
		f    func()
	}{
		{"Add", func() { _, _ = a.Add(b) }},
		{"Add overflow", func() { _, _ = a.Add(a) }},
		{"Sub", func() { _, _ = a.Sub(b) }},
		{"Cmp", func() { _ = a.Cmp(b) }},
		{"Parse small", func() { _, _ = amount.Parse("1500") }},
		{"Parse max", func() { _, _ = amount.Parse(s) }},
		{"AppendDecimal small", func() { buf = one.AppendDecimal(buf[:0]) }},
		{"AppendDecimal max", func() { buf = a.AppendDecimal(buf[:0]) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tt.name, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = a.String() }); n != 1 {
		t.Errorf("String: %v allocs per run, want 1 (the string)", n)
	}
}

func BenchmarkAdd(b *testing.B) {
	x, y := amount.Uint128{Hi: 1 << 40, Lo: 1 << 63}, amount.Uint128{Hi: 3, Lo: 1 << 63}
	b.Run("Uint128", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			x.Add(y)
		}
	})
	b.Run("big.Int", func(b *testing.B) {
		xb, yb, z := toBig(x), toBig(y), new(big.Int)
		b.ReportAllocs()
		for b.Loop() {
			z.Add(xb, yb)
		}
	})
}
