package client_test

import (
	"errors"
	"math/big"
	"testing"

	"github.com/bulwark-ledger/bulwark/client"
)

func TestParseAmount(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"0", true}, {"1", true}, {"1500", true},
		{"340282366920938463463374607431768211455", true},
		{"340282366920938463463374607431768211456", false},
		{"999999999999999999999999999999999999999", false},
		{"1000000000000000000000000000000000000000", false},
		{"", false}, {"01", false}, {"-1", false}, {"+1", false}, {"1.5", false}, {"1e3", false}, {" 1", false},
	} {
		a, err := client.ParseAmount(tc.in)
		if tc.ok != (err == nil) || (tc.ok && string(a) != tc.in) {
			t.Errorf("ParseAmount(%q) = %q, %v; want ok=%v", tc.in, a, err, tc.ok)
		}
		if err != nil && !errors.Is(err, client.ErrInvalidAmount) {
			t.Errorf("ParseAmount(%q): %v is not ErrInvalidAmount", tc.in, err)
		}
	}
	if got := client.Uint64(18446744073709551615); got != "18446744073709551615" {
		t.Errorf("Uint64(max) = %q", got)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	for name, tc := range map[string]struct {
		url, key string
		opts     []client.Option
	}{
		"bad url":        {"ftp://x", "k", nil},
		"no host":        {"http://", "k", nil},
		"empty key":      {"http://x", "", nil},
		"nil http":       {"http://x", "k", []client.Option{client.WithHTTPClient(nil)}},
		"zero timeout":   {"http://x", "k", []client.Option{client.WithTimeout(0)}},
		"zero attempts":  {"http://x", "k", []client.Option{client.WithRetry(0, 1)}},
		"zero elapsed":   {"http://x", "k", []client.Option{client.WithRetry(3, 0)}},
		"big batch":      {"http://x", "k", []client.Option{client.WithBatching(client.MaxBatch+1, 1)}},
		"zero linger":    {"http://x", "k", []client.Option{client.WithBatching(10, 0)}},
		"both batchings": {"http://x", "k", []client.Option{client.WithBatching(10, 1), client.WithoutBatching()}},
		"zero in flight": {"http://x", "k", []client.Option{client.WithInFlightBatches(0)}},
	} {
		c, err := client.New(tc.url, tc.key, tc.opts...)
		if err == nil {
			c.Close()
			t.Errorf("%s: New accepted it", name)
		}
	}
	c, err := client.New("http://127.0.0.1:1/prefix/", "k", client.WithRetry(1, 1), client.WithBatching(10, 1))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close() // idempotent
}

// FuzzParseAmount: ParseAmount accepts exactly the canonical decimal
// strings of 0 to 2^128-1 (checked against math/big).
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"0", "1", "01", "-1", "340282366920938463463374607431768211455", "340282366920938463463374607431768211456", "1e3", ""} {
		f.Add(s)
	}
	maxAmount := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := new(big.Int).SetString(s, 10)
		want := ok && n.Sign() >= 0 && n.Cmp(maxAmount) <= 0 && n.String() == s
		_, err := client.ParseAmount(s)
		if (err == nil) != want {
			t.Fatalf("ParseAmount(%q): %v, want ok=%v", s, err, want)
		}
	})
}
