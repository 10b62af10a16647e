package tile

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

var windows = []spec.Window{
	spec.MinWindow, spec.Window(10 * time.Minute), spec.Window(59 * time.Minute), spec.Window(time.Hour),
	spec.Window(61 * time.Minute), spec.Window(25 * time.Hour), spec.Window(48 * time.Hour),
	spec.Window(48*time.Hour + time.Minute), spec.Window(7 * 24 * time.Hour), spec.MaxWindow,
	spec.MaxWindow - spec.MinWindow,
}

func TestBuckets(t *testing.T) {
	at := time.Date(2026, 11, 30, 22, 37, 41, 999_999_999, time.UTC)
	b := Buckets(at)
	want := [Levels]int64{
		time.Date(2026, 11, 30, 22, 37, 41, 0, time.UTC).Unix(),
		time.Date(2026, 11, 30, 22, 37, 0, 0, time.UTC).Unix(),
		time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC).Unix(),
		time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC).Unix(),
	}
	for l := Second; l <= Day; l++ {
		if b[l].Level != l || b[l].Start != want[l] || b[l].Start%l.Seconds() != 0 {
			t.Errorf("level %s: %v, want start %d", l, b[l], want[l])
		}
	}
	neg := Buckets(time.Unix(-1, 0))
	if neg[Day].Start != -86400 || neg[Second].Start != -1 {
		t.Errorf("before 1970: %v", neg)
	}
	for l := Second; l <= Day; l++ {
		if l.Retention() < l.Size() {
			t.Errorf("%s retention %s", l, l.Retention())
		}
	}
}

// checkCover asserts the cover's buckets are aligned, disjoint, newest
// first, within MaxCover, and that their union is exactly Span.
func checkCover(t *testing.T, now time.Time, w spec.Window) {
	t.Helper()
	c := Cover(now, w)
	lo, hi := Span(now, w)
	if len(c) == 0 || len(c) > MaxCover() {
		t.Fatalf("Cover(%s, %s): %d buckets", now, w, len(c))
	}
	if c[0].Start > hi || c[0].End() <= hi {
		t.Fatalf("Cover(%s, %s): head %v does not hold now", now, w, c[0])
	}
	for i, b := range c {
		if b.Start%b.Level.Seconds() != 0 || b.Level < Resolution(w) {
			t.Fatalf("bucket %v misaligned or finer than %s", b, Resolution(w))
		}
		if i > 0 && b.End() != c[i-1].Start {
			t.Fatalf("Cover(%s, %s): gap or overlap between %v and %v", now, w, c[i-1], b)
		}
	}
	if last := c[len(c)-1]; last.Start != lo {
		t.Fatalf("Cover(%s, %s): tail %v, want start %d", now, w, last, lo)
	}
	exactLo := hi - int64(time.Duration(w)/time.Second) + 1
	res := Resolution(w).Seconds()
	if lo > exactLo || exactLo-lo >= res || (res == 1 && lo != exactLo) {
		t.Fatalf("Span(%s, %s) starts at %d, exact window at %d (resolution %ds)", now, w, lo, exactLo, res)
	}
}

func TestCover(t *testing.T) {
	base := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	nows := []time.Time{base, base.Add(-time.Nanosecond), base.Add(time.Second), base.Add(59*time.Minute + 59*time.Second + 5e8),
		base.Add(23*time.Hour + 59*time.Minute + 59*time.Second), base.Add(30*time.Minute + 30*time.Second), base.Add(time.Hour - time.Second)}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		nows = append(nows, base.Add(time.Duration(rng.Int64N(int64(5*24*time.Hour)))))
	}
	longest := 0
	for _, now := range nows {
		for _, w := range windows {
			checkCover(t, now, w)
			longest = max(longest, len(Cover(now, w)))
		}
		w := spec.Window(time.Duration(1+rng.IntN(int(spec.MaxWindow/spec.MinWindow))) * time.Minute)
		checkCover(t, now, w)
	}
	// The bound is nearly reached (so it is not loose by much).
	if longest < MaxCover()-10 {
		t.Errorf("longest cover %d buckets, MaxCover %d", longest, MaxCover())
	}
	t.Logf("longest cover: %d buckets (MaxCover %d)", longest, MaxCover())
}

func TestExpired(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	// Every bucket of every cover at now is kept, with or without lateness.
	for _, w := range windows {
		for _, b := range Cover(now, w) {
			if Expired(b, now, 0) {
				t.Errorf("window %s: bucket %v expired but read", w, b)
			}
		}
	}
	old := Bucket{Level: Second, Start: now.Add(-2 * time.Hour).Unix()}
	if !Expired(old, now, 0) || Expired(old, now, 2*time.Hour) {
		t.Errorf("1s bucket 2h old: expired %v, with 2h lateness %v", Expired(old, now, 0), Expired(old, now, 2*time.Hour))
	}
}

func intv(n int64) spec.Value { return spec.IntValue(spec.IntFromInt64(n)) }

func TestStateResults(t *testing.T) {
	s := NewState()
	for _, agg := range spec.Aggregations() {
		want := "null"
		if agg == spec.AggCount || agg == spec.AggSum || agg == spec.AggDistinctCount {
			want = "0"
		}
		if got := s.Result(agg).String(); got != want {
			t.Errorf("empty %s = %s, want %s", agg, got, want)
		}
	}
	t0 := time.Unix(1_700_000_000, 0)
	s.Add(intv(5), t0, "a")
	s.Add(intv(-2), t0.Add(time.Second), "b")
	s.Add(spec.StringValue("zz"), t0, "c")
	s.Add(intv(5), t0.Add(time.Second), "a2")
	s.Add(spec.Value{}, t0, "d")
	for agg, want := range map[string]string{
		spec.AggCount: "5", spec.AggSum: "8", spec.AggMin: "-2", spec.AggMax: "5", spec.AggAvg: `"2.666667"`,
		spec.AggDistinctCount: "3", spec.AggLast: "-2", "median": "null", // last: equal times, id "b" > "a2"
	} {
		if got := s.Result(agg).String(); got != want {
			t.Errorf("%s = %s, want %s", agg, got, want)
		}
	}
	if s.Skipped() != 2 {
		t.Errorf("skipped %d", s.Skipped())
	}
	strs := NewState()
	strs.Add(spec.StringValue("b"), t0, "x")
	strs.Add(spec.StringValue("a"), t0, "y")
	if strs.Result(spec.AggMin).String() != `"a"` || strs.Result(spec.AggMax).String() != `"b"` || strs.Result(spec.AggLast).String() != `"a"` {
		t.Errorf("strings: %s %s %s", strs.Result(spec.AggMin), strs.Result(spec.AggMax), strs.Result(spec.AggLast))
	}
}

// TestAddForAnswersItsAggregation: a state built with AddFor(agg), merged
// from several buckets as a read merges them, answers agg as a state built
// with Add does, for every aggregation, on integers, strings and values
// past the distinct set's exact bound; and only distinct_count keeps the
// distinct set, so the others stay small however many values they see.
func TestAddForAnswersItsAggregation(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	t0 := time.Unix(1_700_000_000, 0)
	for _, agg := range spec.Aggregations() {
		all, only := NewState(), NewState()
		for b := range 3 {
			ball, bonly := NewState(), NewState()
			for i := range 400 {
				var v spec.Value
				switch rng.IntN(10) {
				case 0:
					v = spec.StringValue("s" + strconv.Itoa(rng.IntN(50)))
				case 1:
				default:
					v = intv(rng.Int64N(100_000) - 50_000)
				}
				at, id := t0.Add(time.Duration(rng.IntN(60))*time.Second), fmt.Sprintf("e%d-%d", b, i)
				ball.Add(v, at, id)
				bonly.AddFor(agg, v, at, id)
			}
			all.Merge(ball)
			only.Merge(bonly)
		}
		if got, want := only.Result(agg).String(), all.Result(agg).String(); got != want {
			t.Errorf("%s: AddFor answers %s, Add %s", agg, got, want)
		}
		raw, err := only.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if small := len(raw) < 128; small == (agg == spec.AggDistinctCount) {
			t.Errorf("%s: AddFor state of 1,200 events is %d bytes", agg, len(raw))
		}
	}
}

func TestAvgRounding(t *testing.T) {
	for _, tc := range []struct {
		vals []int64
		want string
	}{
		{[]int64{1, 2}, "1.500000"}, {[]int64{-1, -2}, "-1.500000"}, {[]int64{0}, "0.000000"},
		{[]int64{1, 0, 0, 0, 0, 0, 0, 0}, "0.125000"},
		// 1/3 = 0.3333333…, 2/3 = 0.6666666…
		{[]int64{1, 0, 0}, "0.333333"}, {[]int64{2, 0, 0}, "0.666667"}, {[]int64{-2, 0, 0}, "-0.666667"},
	} {
		s := NewState()
		for _, v := range tc.vals {
			s.Add(intv(v), time.Unix(0, 0), "")
		}
		if got := s.Result(spec.AggAvg).String(); got != `"`+tc.want+`"` {
			t.Errorf("avg %v = %s, want %s", tc.vals, got, tc.want)
		}
	}
	// Half to even at the 7th decimal: 0.0000005 → 0.000000, 0.0000015 → 0.000002.
	for _, tc := range []struct {
		sum, n int64
		want   string
	}{{1, 2_000_000, "0.000000"}, {3, 2_000_000, "0.000002"}} {
		s := &State{count: tc.n, ints: tc.n, sum: fromInt(spec.IntFromInt64(tc.sum)), minInt: spec.IntFromInt64(0), maxInt: spec.IntFromInt64(1)}
		if got := s.Result(spec.AggAvg).String(); got != `"`+tc.want+`"` {
			t.Errorf("avg %d/%d = %s, want %s", tc.sum, tc.n, got, tc.want)
		}
	}
}

func TestSumExactAtTheEdges(t *testing.T) {
	s := NewState()
	const n = 1000
	for i := range n {
		s.Add(spec.IntValue(spec.MaxInt()), time.Unix(int64(i), 0), "")
	}
	// 1000 × (2^128-1), far beyond 128 bits, exact.
	maxBig, _ := new(big.Int).SetString(spec.MaxInt().String(), 10)
	want := new(big.Int).Mul(maxBig, big.NewInt(n)).String()
	if got := s.Result(spec.AggSum).String(); got != want {
		t.Errorf("sum of %d maxima = %s, want %s", n, got, want)
	}
	if got := s.Result(spec.AggAvg).String(); got != `"340282366920938463463374607431768211455.000000"` {
		t.Errorf("avg of maxima = %s", got)
	}
	for range n {
		s.Add(spec.IntValue(spec.MinInt()), time.Unix(0, 0), "")
	}
	if s.Result(spec.AggSum).String() != "0" || s.Result(spec.AggMin).String() != "-"+spec.MaxInt().String() {
		t.Errorf("after as many minima: sum %s min %s", s.Result(spec.AggSum), s.Result(spec.AggMin))
	}
	// The accumulator refuses to wrap.
	huge := &State{count: 1, ints: 1, sum: acc{0, 0, 0, 1 << 62}, minInt: spec.MaxInt(), maxInt: spec.MaxInt()}
	for range 3 {
		huge.Merge(huge.Clone())
	}
	if !huge.Result(spec.AggSum).IsNull() || !huge.sumOverflow {
		t.Errorf("overflowed sum answered %s", huge.Result(spec.AggSum))
	}
}

func TestDistinctBound(t *testing.T) {
	for _, n := range []int{0, 1, 256, 257, 1000, 20000, 100000} {
		a, b := NewState(), NewState()
		for i := range n {
			v := spec.StringValue(fmt.Sprintf("device-%d", i))
			if i%2 == 0 {
				a.Add(v, time.Unix(0, 0), "")
			} else {
				b.Add(v, time.Unix(0, 0), "")
			}
			a.Add(v, time.Unix(0, 0), "") // duplicates do not count
		}
		a.Merge(b)
		got := a.distinct.estimate()
		if n <= maxExact && got != int64(n) {
			t.Errorf("distinct of %d = %d, want exact", n, got)
		}
		if diff := float64(got - int64(n)); diff > 0.05*float64(n) || -diff > 0.05*float64(n) {
			t.Errorf("distinct of %d = %d: beyond ±5%%", n, got)
		}
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 5, 300} {
		s := NewState()
		for i := range n {
			s.Add(randomValue(rng), time.Unix(int64(rng.IntN(100)), 0), fmt.Sprint(i))
		}
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var d State
		if err := d.UnmarshalBinary(b); err != nil {
			t.Fatalf("%d values: %v", n, err)
		}
		b2, _ := d.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatalf("%d values: re-encoding differs", n)
		}
		for _, agg := range spec.Aggregations() {
			if s.Result(agg) != d.Result(agg) {
				t.Errorf("%d values: %s %s != %s", n, agg, s.Result(agg), d.Result(agg))
			}
		}
		for cut := range len(b) {
			if err := new(State).UnmarshalBinary(b[:cut]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%d values: truncated at %d: %v", n, cut, err)
			}
		}
	}
	if err := new(State).UnmarshalBinary([]byte{2}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unknown version: %v", err)
	}
}

func randomValue(rng *rand.Rand) spec.Value {
	switch rng.IntN(10) {
	case 0:
		return spec.StringValue(fmt.Sprintf("s%d", rng.IntN(50)))
	case 1:
		return spec.BoolValue(rng.IntN(2) == 1)
	case 2:
		if rng.IntN(2) == 0 {
			return spec.IntValue(spec.MaxInt())
		}
		return spec.IntValue(spec.MinInt())
	case 3:
		return spec.Value{}
	}
	return intv(rng.Int64N(2_000_001) - 1_000_000)
}

type event struct {
	v  spec.Value
	t  time.Time
	id string
}

// TestCoverMatchesBruteForce feeds random events into tiles at every
// level and checks that merging the cover of each window gives the same
// answers as aggregating the events of Span by brute force.
func TestCoverMatchesBruteForce(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if env := os.Getenv("TILE_SEED"); env != "" {
		var err error
		if seed, err = strconv.ParseUint(env, 10, 64); err != nil {
			t.Fatalf("TILE_SEED=%q: %v", env, err)
		}
	}
	t.Logf("seed %d (replay: TILE_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	base := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	var events []event
	for i := range 3000 {
		// Dense in the last two hours, sparse over four days.
		span := 4 * 24 * time.Hour
		if i%2 == 0 {
			span = 2 * time.Hour
		}
		at := base.Add(4*24*time.Hour - time.Duration(rng.Int64N(int64(span))))
		events = append(events, event{v: randomValue(rng), t: at, id: fmt.Sprintf("e%d", i)})
	}
	for trial := range 12 {
		now := base.Add(4*24*time.Hour - time.Duration(rng.Int64N(int64(time.Hour))) - time.Duration(trial)*17*time.Minute)
		tiles := map[Bucket]*State{}
		for _, e := range events {
			if e.t.After(now) {
				continue // the head bucket would hold it: see the package doc
			}
			for _, b := range Buckets(e.t) {
				if tiles[b] == nil {
					tiles[b] = NewState()
				}
				tiles[b].Add(e.v, e.t, e.id)
			}
		}
		for _, w := range windows {
			got := NewState()
			for _, b := range Cover(now, w) {
				if s := tiles[b]; s != nil {
					got.Merge(s)
				}
			}
			want := NewState()
			lo, hi := Span(now, w)
			for _, e := range events {
				if s := e.t.Unix(); s >= lo && s <= hi && !e.t.After(now) {
					want.Add(e.v, e.t, e.id)
				}
			}
			for _, agg := range spec.Aggregations() {
				if agg == spec.AggDistinctCount {
					continue
				}
				if g, w2 := got.Result(agg), want.Result(agg); g != w2 {
					t.Fatalf("now %s window %s: %s = %s, brute force %s", now, w, agg, g, w2)
				}
			}
			g, w2 := got.distinct.estimate(), want.distinct.estimate()
			if d := float64(g - w2); d > 0.05*float64(w2)+1 || -d > 0.05*float64(w2)+1 {
				t.Fatalf("now %s window %s: distinct %d, brute force %d", now, w, g, w2)
			}
		}
	}
}

func TestMergeOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	parts := make([]*State, 20)
	for i := range parts {
		parts[i] = NewState()
		for j := range 30 {
			parts[i].Add(randomValue(rng), time.Unix(int64(rng.IntN(5)), 0), fmt.Sprintf("%d-%d", i, j))
		}
	}
	results := func(order []int) []string {
		s := NewState()
		for _, i := range order {
			s.Merge(parts[i])
		}
		var out []string
		for _, agg := range spec.Aggregations() {
			out = append(out, s.Result(agg).String())
		}
		return out
	}
	order := rng.Perm(len(parts))
	a := results(order)
	slices.Reverse(order)
	if b := results(order); !slices.Equal(a, b) {
		t.Errorf("merge order changes results: %v vs %v", a, b)
	}
}

func TestDistinctUnion(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for range 500 {
		var a, b distinct
		set := map[uint64]bool{}
		for range rng.IntN(200) {
			h := uint64(rng.IntN(300))
			a.add(h)
			set[h] = true
		}
		for range rng.IntN(200) {
			h := uint64(rng.IntN(300))
			b.add(h)
			set[h] = true
		}
		a.merge(&b)
		if a.hll != nil {
			if len(set) <= maxExact {
				t.Fatalf("sketch for %d values", len(set))
			}
			continue
		}
		if len(a.exact) != len(set) || !slices.IsSorted(a.exact) {
			t.Fatalf("union %v of %d values", a.exact, len(set))
		}
		for _, h := range a.exact {
			if !set[h] {
				t.Fatalf("union holds %d", h)
			}
		}
	}
}

// TestMarshalAllocatesOnce: MarshalBinary sizes its buffer for every part
// a state has (integers, strings, last value, distinct set or sketch), so
// encoding a tile is one allocation, not a series of growths.
func TestMarshalAllocatesOnce(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	cases := map[string]func(s *State){
		"ints": func(s *State) {
			for i := range 50 {
				s.AddFor(spec.AggSum, intv(int64(i)*1_000_003-7), t0, "e")
			}
		},
		"strings and last": func(s *State) {
			for i := range 20 {
				s.Add(spec.StringValue(strings.Repeat("x", i)+"y"), t0.Add(time.Duration(i)*time.Second), "event-"+strconv.Itoa(i))
			}
		},
		"exact distinct": func(s *State) {
			for i := range 200 {
				s.Add(intv(int64(i)), t0, "e")
			}
		},
		"sketch": func(s *State) {
			for i := range 2000 {
				s.Add(intv(int64(i)), t0, "e")
			}
		},
	}
	for name, fill := range cases {
		s := NewState()
		fill(s)
		if n := testing.AllocsPerRun(20, func() {
			if _, err := s.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
		}); n != 1 {
			t.Errorf("%s: %v allocations per MarshalBinary, want 1", name, n)
		}
	}
}
