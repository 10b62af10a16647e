package amount_test

import (
	"errors"
	"math"
	"math/big"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

func numeric(t *testing.T, i string, exp int32) pgtype.Numeric {
	return pgtype.Numeric{Int: mustBig(t, i), Exp: exp, Valid: true}
}

func TestScanNumeric(t *testing.T) {
	tests := []struct {
		name string
		in   pgtype.Numeric
		want string
	}{
		{"zero", numeric(t, "0", 0), "0"},
		{"zero huge exp", numeric(t, "0", math.MaxInt32), "0"},
		{"zero tiny exp", numeric(t, "0", math.MinInt32), "0"},
		{"nil Int is zero, like pgx encodes it", pgtype.Numeric{Valid: true}, "0"},
		{"plain", numeric(t, "1500", 0), "1500"},
		{"positive exp", numeric(t, "15", 2), "1500"},
		{"negative exp", numeric(t, "150000", -2), "1500"},
		{"max", numeric(t, max128, 0), max128},
		{"max with trailing zeros", numeric(t, max128+"00000", -5), max128},
		{"2^64 positive exp", numeric(t, "1844674407370955161600", -2), pow64},
		{"10^38 as 1e38", numeric(t, "1", 38), pow10_38},
		{"3e38", numeric(t, "3", 38), "300000000000000000000000000000000000000"},
		{"34e37", numeric(t, "34", 37), "340000000000000000000000000000000000000"},
		{"-exp equal to bit length", numeric(t, "10", -1), "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got amount.Uint128
			if err := got.ScanNumeric(tt.in); err != nil {
				t.Fatalf("ScanNumeric: %v", err)
			}
			if got.String() != tt.want {
				t.Errorf("ScanNumeric = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestScanNumericRejects(t *testing.T) {
	tests := []struct {
		name string
		in   pgtype.Numeric
		want error
	}{
		{"NULL", pgtype.Numeric{}, amount.ErrNull},
		{"NaN", pgtype.Numeric{NaN: true, Valid: true}, amount.ErrRange},
		{"Infinity", pgtype.Numeric{InfinityModifier: pgtype.Infinity, Valid: true}, amount.ErrRange},
		{"-Infinity", pgtype.Numeric{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, amount.ErrRange},
		{"negative", numeric(t, "-1", 0), amount.ErrRange},
		{"negative with exp", numeric(t, "-150", -1), amount.ErrRange},
		{"fraction", numeric(t, "15", -1), amount.ErrRange},
		{"fraction below one", numeric(t, "5", -1), amount.ErrRange},
		{"fraction in max", numeric(t, max128+"1", -1), amount.ErrRange},
		{"fraction huge negative exp", numeric(t, "1", math.MinInt32), amount.ErrRange},
		{"2^128", numeric(t, pow128, 0), amount.ErrRange},
		{"2^128 with exp", numeric(t, pow128+"000", -3), amount.ErrRange},
		{"4e38", numeric(t, "4", 38), amount.ErrRange},
		{"35e37", numeric(t, "35", 37), amount.ErrRange},
		{"1e39", numeric(t, "1", 39), amount.ErrRange},
		{"huge exp", numeric(t, "1", math.MaxInt32), amount.ErrRange},
		{"huge Int", pgtype.Numeric{Int: new(big.Int).Lsh(big.NewInt(1), 100_000), Valid: true}, amount.ErrRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := amount.FromUint64(77)
			err := got.ScanNumeric(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ScanNumeric: error %v, want %v", err, tt.want)
			}
			if got != amount.FromUint64(77) {
				t.Errorf("ScanNumeric changed the value to %v on error", got)
			}
			if len(err.Error()) > 200 {
				t.Errorf("error message of %d bytes, want it clipped", len(err.Error()))
			}
		})
	}
}

func TestNumericValue(t *testing.T) {
	r := newRand(t)
	values := []amount.Uint128{{}, one, maxU64, two64, amount.Max()}
	for range 10_000 {
		values = append(values, randAmount(r))
	}
	for _, v := range values {
		n, err := v.NumericValue()
		if err != nil {
			t.Fatal(err)
		}
		if !n.Valid || n.NaN || n.InfinityModifier != pgtype.Finite || n.Exp != 0 || n.Int.Cmp(toBig(v)) != 0 {
			t.Fatalf("%v.NumericValue() = %+v", v, n)
		}
		var back amount.Uint128
		if err := back.ScanNumeric(n); err != nil || back != v {
			t.Fatalf("ScanNumeric(%v.NumericValue()) = %v, %v", v, back, err)
		}
	}
}

// TestPgxCodec runs values through pgx's own numeric codec, in both wire
// formats, as a query argument and a scan target would be: this is the path
// Exec, Query and CopyFrom take, short of the socket.
func TestPgxCodec(t *testing.T) {
	m := pgtype.NewMap()
	r := newRand(t)
	values := []amount.Uint128{{}, one, amount.FromUint64(1500), maxU64, two64, amount.Max()}
	for range 1000 {
		values = append(values, randAmount(r))
	}
	for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
		for _, v := range values {
			wire, err := m.Encode(pgtype.NumericOID, format, v, nil)
			if err != nil {
				t.Fatalf("format %d: encode %v: %v", format, v, err)
			}
			var got amount.Uint128
			if err := m.Scan(pgtype.NumericOID, format, wire, &got); err != nil || got != v {
				t.Fatalf("format %d: scan %v = %v, %v", format, v, got, err)
			}
			var n pgtype.Numeric // pgx's own reading of what we sent
			if err := m.Scan(pgtype.NumericOID, format, wire, &n); err != nil {
				t.Fatal(err)
			}
			if i, err := n.Int64Value(); v.Hi == 0 && v.Lo <= math.MaxInt64 && (err != nil || uint64(i.Int64) != v.Lo) {
				t.Fatalf("format %d: pgx reads %v as %+v, %v", format, v, i, err)
			}
		}
	}
}

func TestPgxCodecUnknownOID(t *testing.T) {
	// With the simple protocol pgx does not know the parameter type and
	// sends text; PostgreSQL then reads the decimal from String.
	m := pgtype.NewMap()
	wire, err := m.Encode(0, pgtype.TextFormatCode, amount.Max(), nil)
	if err != nil || string(wire) != max128 {
		t.Fatalf("encode with unknown OID = %q, %v; want %s", wire, err, max128)
	}
}

func TestPgxCodecScanRejects(t *testing.T) {
	m := pgtype.NewMap()
	encode := func(n pgtype.Numeric) []byte {
		t.Helper()
		wire, err := m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		return wire
	}
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"NULL", nil, amount.ErrNull},
		{"negative", encode(numeric(t, "-5", 0)), amount.ErrRange},
		{"fraction", encode(numeric(t, "15", -1)), amount.ErrRange},
		{"NaN", encode(pgtype.Numeric{NaN: true, Valid: true}), amount.ErrRange},
		{"2^128", encode(numeric(t, pow128, 0)), amount.ErrRange},
	}
	for _, tt := range tests {
		var got amount.Uint128
		if err := m.Scan(pgtype.NumericOID, pgtype.BinaryFormatCode, tt.wire, &got); !errors.Is(err, tt.want) {
			t.Errorf("%s: scan error %v, want %v", tt.name, err, tt.want)
		}
	}
	// A nullable column scans into a pointer, which NULL leaves nil.
	p := new(amount.Uint128)
	if err := m.Scan(pgtype.NumericOID, pgtype.BinaryFormatCode, nil, &p); err != nil || p != nil {
		t.Errorf("scan NULL into **Uint128 = %v, %v; want nil, nil", p, err)
	}
}

func TestScanNumericTrailingZeroForms(t *testing.T) {
	// pgx decodes PostgreSQL's base-10000 digits into Int×10^Exp, so 1500
	// and 1500.00 arrive with Exp ≠ 0; every spelling must scan the same,
	// through the binary and the text wire format.
	forms := []pgtype.Numeric{numeric(t, "15", 2), numeric(t, "150000", -2)}
	for _, text := range []string{"1500", "1500.0", "1500.00000"} {
		var n pgtype.Numeric
		if err := n.Scan(text); err != nil {
			t.Fatal(err)
		}
		forms = append(forms, n)
	}
	m := pgtype.NewMap()
	for _, n := range forms {
		for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
			wire, err := m.Encode(pgtype.NumericOID, format, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got amount.Uint128
			if err := m.Scan(pgtype.NumericOID, format, wire, &got); err != nil || got != amount.FromUint64(1500) {
				t.Errorf("Int %v Exp %d, format %d (wire %q): scan = %v, %v", n.Int, n.Exp, format, wire, got, err)
			}
		}
	}
}
