package amount_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

type transfer struct {
	Amount  amount.Uint128  `json:"amount"`
	Fee     *amount.Uint128 `json:"fee"`
	Ignored int             `json:"-"`
}

func TestJSONRoundTrip(t *testing.T) {
	r := newRand(t)
	values := []amount.Uint128{{}, one, maxU64, two64, amount.Max()}
	for range 1000 {
		values = append(values, randAmount(r))
	}
	for _, v := range values {
		fee := v
		in := transfer{Amount: v, Fee: &fee}
		data, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"amount":"` + v.String() + `","fee":"` + v.String() + `"}`
		if string(data) != want {
			t.Fatalf("Marshal = %s, want %s", data, want)
		}
		var out transfer
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("Unmarshal(%s): %v", data, err)
		}
		if out.Amount != v || out.Fee == nil || *out.Fee != v {
			t.Fatalf("Unmarshal(%s) = %+v", data, out)
		}
	}
}

func TestJSONNullOptional(t *testing.T) {
	var out transfer
	if err := json.Unmarshal([]byte(`{"amount":"5","fee":null}`), &out); err != nil {
		t.Fatal(err)
	}
	if out.Amount != amount.FromUint64(5) || out.Fee != nil {
		t.Errorf("got %+v, want amount 5 and a nil fee", out)
	}
}

func TestJSONRejects(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{`123`, amount.ErrSyntax},
		{`0`, amount.ErrSyntax},
		{`1.5`, amount.ErrSyntax},
		{`1e3`, amount.ErrSyntax},
		{`-1`, amount.ErrSyntax},
		{`null`, amount.ErrSyntax},
		{`true`, amount.ErrSyntax},
		{`{}`, amount.ErrSyntax},
		{`[]`, amount.ErrSyntax},
		{`["1"]`, amount.ErrSyntax},
		{`""`, amount.ErrSyntax},
		{`"01"`, amount.ErrSyntax},
		{`"-1"`, amount.ErrSyntax},
		{`"+1"`, amount.ErrSyntax},
		{`"1.5"`, amount.ErrSyntax},
		{`"1e3"`, amount.ErrSyntax},
		{`" 1"`, amount.ErrSyntax},
		{`"1 "`, amount.ErrSyntax},
		{`"\u0031"`, amount.ErrSyntax}, // "1" spelled with an escape
		{`"` + pow128 + `"`, amount.ErrRange},
	}
	for _, tt := range tests {
		// Through encoding/json, as a field with a sentinel value that a
		// rejected input must leave alone.
		sentinel := amount.FromUint64(77)
		out := transfer{Amount: sentinel}
		err := json.Unmarshal([]byte(`{"amount":`+tt.in+`}`), &out)
		if !errors.Is(err, tt.want) {
			t.Errorf("Unmarshal amount %s: error %v, want %v", tt.in, err, tt.want)
		}
		if out.Amount != sentinel {
			t.Errorf("Unmarshal amount %s: changed the value to %v", tt.in, out.Amount)
		}
		// And directly, as another decoder would call it.
		v := sentinel
		if err := v.UnmarshalJSON([]byte(tt.in)); !errors.Is(err, tt.want) || v != sentinel {
			t.Errorf("UnmarshalJSON(%s) = %v, %v; want error %v and no change", tt.in, v, err, tt.want)
		}
	}
}
