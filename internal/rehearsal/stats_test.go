package rehearsal

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		o    outcome
		code string
	}{
		{nil, achieved, ""},
		{&client.Error{Status: 503, Code: "overloaded"}, rejected, "overloaded"},
		{fmt.Errorf("wrapped: %w", &client.Error{Status: 429, Code: "quota_exceeded"}), rejected, "quota_exceeded"},
		{&client.Error{Status: 503}, rejected, "http_503"},
		{&client.Error{Status: 500, Code: "internal"}, failed, ""},
		{&client.Error{Status: 409, Code: "conflict"}, failed, ""},
		{errors.New("connection refused"), failed, ""},
	} {
		if o, code := classify(tc.err); o != tc.o || code != tc.code {
			t.Errorf("classify(%v) = %d %q, want %d %q", tc.err, o, code, tc.o, tc.code)
		}
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(lat, tc.p); got != tc.want {
			t.Errorf("p%g = %s, want %s", tc.p*100, got, tc.want)
		}
	}
	if percentile(nil, 0.99) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestTallyInvariant(t *testing.T) {
	c := newCounts(1)
	for _, o := range []outcome{achieved, rejected, failed, dropped, achieved} {
		c.arrive(0)
		c.end(0, o, "overloaded", time.Millisecond)
	}
	ts := c.snapshot()
	ts[0].check("payments") // must not panic
	if ts[0].offered != 5 || ts[0].achieved != 2 || ts[0].rejected["overloaded"] != 1 || ts[0].dropped != 1 || ts[0].errors != 1 {
		t.Errorf("tally %+v", ts[0])
	}
	c.arrive(0) // an arrival without an outcome breaks the invariant
	defer func() {
		if recover() == nil {
			t.Error("check did not panic on offered != sum of outcomes")
		}
	}()
	bad := c.snapshot()
	bad[0].check("payments")
}
