package amount_test

import (
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

func TestParse(t *testing.T) {
	good := []string{
		"0", "1", "9", "10", "1500",
		"9999999999999999999",  // 10^19-1: one full chunk
		"10000000000000000000", // 10^19: first two-chunk value
		max64, pow64,
		"99999999999999999999999999999999999999", // 38 nines
		pow10_38,
		"340282366920938463463374607431768211454",
		max128,
	}
	for _, s := range good {
		t.Run(s, func(t *testing.T) {
			got, err := amount.Parse(s)
			if err != nil {
				t.Fatalf("Parse(%q): %v", s, err)
			}
			if toBig(got).Cmp(mustBig(t, s)) != 0 {
				t.Errorf("Parse(%q) = %v", s, got)
			}
			if got.String() != s {
				t.Errorf("Parse(%q).String() = %q", s, got.String())
			}
		})
	}
	if v, _ := amount.Parse(max64); v != maxU64 {
		t.Errorf("Parse(2^64-1) = %#v", v)
	}
	if v, _ := amount.Parse(pow64); v != two64 {
		t.Errorf("Parse(2^64) = %#v", v)
	}
	if v, _ := amount.Parse(max128); v != amount.Max() {
		t.Errorf("Parse(2^128-1) = %#v", v)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"", amount.ErrSyntax},
		{"00", amount.ErrSyntax},
		{"01", amount.ErrSyntax},
		{"0" + max128, amount.ErrSyntax}, // leading zero beats length
		{"-1", amount.ErrSyntax},
		{"-0", amount.ErrSyntax},
		{"+1", amount.ErrSyntax},
		{" 1", amount.ErrSyntax},
		{"1 ", amount.ErrSyntax},
		{"1\n", amount.ErrSyntax},
		{"1.0", amount.ErrSyntax},
		{"1.", amount.ErrSyntax},
		{".5", amount.ErrSyntax},
		{"1e3", amount.ErrSyntax},
		{"1E3", amount.ErrSyntax},
		{"1_000", amount.ErrSyntax},
		{"1,000", amount.ErrSyntax},
		{"0x10", amount.ErrSyntax},
		{"Inf", amount.ErrSyntax},
		{"NaN", amount.ErrSyntax},
		{"١", amount.ErrSyntax}, // Arabic-Indic digit one
		{"１", amount.ErrSyntax}, // fullwidth digit one
		{"1\x00", amount.ErrSyntax},
		{"\xff", amount.ErrSyntax},
		{strings.Repeat("1", 1<<20) + "x", amount.ErrSyntax},
		{pow128, amount.ErrRange},
		{"340282366920938463463374607431768211459", amount.ErrRange},
		{"399999999999999999999999999999999999999", amount.ErrRange},
		{"999999999999999999999999999999999999999", amount.ErrRange},  // 39 nines
		{"1000000000000000000000000000000000000000", amount.ErrRange}, // 40 digits
		{strings.Repeat("9", 1<<20), amount.ErrRange},
	}
	for _, tt := range tests {
		got, err := amount.Parse(tt.in)
		if !errors.Is(err, tt.want) || !got.IsZero() {
			t.Errorf("Parse(%.50q) = %v, %v; want error %v", tt.in, got, err, tt.want)
			continue
		}
		if errors.Is(err, amount.ErrSyntax) && errors.Is(err, amount.ErrRange) {
			t.Errorf("Parse(%.50q): %v wraps both sentinels", tt.in, err)
		}
		if len(err.Error()) > 200 {
			t.Errorf("Parse(%.50q): error message of %d bytes, want it clipped", tt.in, len(err.Error()))
		}
	}
}

// TestStringAgainstBig round-trips random values through String and Parse
// and compares the text with math/big.
func TestStringAgainstBig(t *testing.T) {
	r := newRand(t)
	buf := make([]byte, 0, 64)
	for range 100_000 {
		v := randAmount(r)
		want := toBig(v).String()
		if got := v.String(); got != want {
			t.Fatalf("%#v.String() = %s, want %s", v, got, want)
		}
		buf = append(buf[:0], "x="...)
		if got := string(v.AppendDecimal(buf)); got != "x="+want {
			t.Fatalf("%#v.AppendDecimal(\"x=\") = %s, want x=%s", v, got, want)
		}
		back, err := amount.Parse(want)
		if err != nil || back != v {
			t.Fatalf("Parse(%s) = %#v, %v; want %#v", want, back, err, v)
		}
	}
}

func TestNet(t *testing.T) {
	tests := []struct {
		credits, debits amount.Uint128
		want            string
	}{
		{amount.Uint128{}, amount.Uint128{}, "0"},
		{amount.FromUint64(100), amount.FromUint64(58), "42"},
		{amount.FromUint64(58), amount.FromUint64(100), "-42"},
		{amount.FromUint64(7), amount.FromUint64(7), "0"},
		{amount.Max(), amount.Uint128{}, max128},
		{amount.Uint128{}, amount.Max(), "-" + max128},
		{maxU64, two64, "-1"},
		{two64, amount.Uint128{}, pow64},
	}
	for _, tt := range tests {
		if got := amount.Net(tt.credits, tt.debits); got != tt.want {
			t.Errorf("Net(%v, %v) = %s, want %s", tt.credits, tt.debits, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "0", "00", "01", "1", "-1", "+1", " 1", "1.5", "1e3", "1_0",
		max64, pow64, max128, pow128, pow10_38, "0" + max128, max128 + "0",
	} {
		f.Add(s)
	}
	maxB := toBig(amount.Max())
	f.Fuzz(func(t *testing.T, s string) {
		v, err := amount.Parse(s)
		canonical := s != "" && strings.Trim(s, "0123456789") == "" && (s == "0" || s[0] != '0')
		if err != nil {
			if !v.IsZero() {
				t.Fatalf("Parse(%q) = %v with error %v, want zero value", s, v, err)
			}
			switch {
			case errors.Is(err, amount.ErrSyntax) && !canonical:
			case errors.Is(err, amount.ErrRange) && canonical && mustBig(t, s).Cmp(maxB) > 0:
			default:
				t.Fatalf("Parse(%q): unexpected error %v (canonical %t)", s, err, canonical)
			}
			return
		}
		if !canonical {
			t.Fatalf("Parse(%q) = %v, accepted a non-canonical string", s, v)
		}
		if got := v.String(); got != s {
			t.Fatalf("Parse(%q).String() = %q", s, got)
		}
		if toBig(v).Cmp(mustBig(t, s)) != 0 {
			t.Fatalf("Parse(%q) = %v, math/big disagrees", s, v)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, s := range []string{"1500", max64, max128} {
		b.Run("Uint128/"+digits(s), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := amount.Parse(s); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("big.Int/"+digits(s), func(b *testing.B) {
			z := new(big.Int)
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := z.SetString(s, 10); !ok {
					b.Fatal(s)
				}
			}
		})
	}
}

func BenchmarkAppendDecimal(b *testing.B) {
	for _, s := range []string{"1500", max64, max128} {
		v, _ := amount.Parse(s)
		b.Run("Uint128/"+digits(s), func(b *testing.B) {
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				buf = v.AppendDecimal(buf[:0])
			}
		})
		b.Run("big.Int/"+digits(s), func(b *testing.B) {
			vb, buf := toBig(v), make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				buf = vb.Append(buf[:0], 10)
			}
		})
	}
}

func digits(s string) string {
	return strconv.Itoa(len(s)) + "digits"
}
