package tile

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

func FuzzStateUnmarshalBinary(f *testing.F) {
	for _, n := range []int{0, 3, 300} {
		s := NewState()
		for i := range n {
			s.Add(intv(int64(i)), time.Unix(int64(i), 0), "x")
			s.Add(spec.StringValue(fmt.Sprint(i)), time.Unix(int64(i), 0), "y")
		}
		b, _ := s.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{1, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s State
		if err := s.UnmarshalBinary(data); err != nil {
			return
		}
		for _, agg := range spec.Aggregations() {
			_ = s.Result(agg)
		}
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var again State
		if err := again.UnmarshalBinary(b); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if b2, _ := again.MarshalBinary(); !bytes.Equal(b, b2) {
			t.Fatal("encoding not stable")
		}
		s.Merge(&again)
	})
}

func BenchmarkStateAdd(b *testing.B) {
	s := NewState()
	vals := []spec.Value{intv(1500), intv(99), spec.IntValue(spec.MaxInt()), intv(-7)}
	t0 := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Add(vals[i&3], t0, "evt")
		i++
	}
}

func BenchmarkMergeCover(b *testing.B) {
	now := time.Date(2026, 11, 30, 0, 30, 29, 0, time.UTC) // 1 + 29 minutes + 29 seconds + 1 hour
	cover := Cover(now, spec.Window(time.Hour))
	tiles := make([]*State, len(cover))
	for i := range tiles {
		tiles[i] = NewState()
		for j := range 20 {
			tiles[i].Add(intv(int64(j*1000+i)), now, "e")
		}
	}
	b.ReportMetric(float64(len(cover)), "tiles/op")
	b.ReportAllocs()
	for b.Loop() {
		s := NewState()
		for _, t := range tiles {
			s.Merge(t)
		}
		if s.Result(spec.AggSum).IsNull() {
			b.Fatal("no sum")
		}
	}
}
