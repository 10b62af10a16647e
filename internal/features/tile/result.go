package tile

import (
	"math/big"
	"strconv"
	"strings"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

// Result is one aggregation's answer, as JSON: count and distinct_count
// are integers; sum an exact integer (0 for an empty window); min, max
// and last the value itself (an exact number, a string or a boolean);
// avg a decimal string, sum/count of the integers rounded half to even to
// 6 decimals ("12.500000"). min, max, last and avg of an empty window, an
// overflowed sum and an unknown aggregation are null.
type Result struct {
	json string // "" is null
}

// MarshalJSON returns the result's JSON.
func (r Result) MarshalJSON() ([]byte, error) { return []byte(r.String()), nil }

// String returns the result's JSON text.
func (r Result) String() string {
	if r.json == "" {
		return "null"
	}
	return r.json
}

// IsNull reports whether the result is null.
func (r Result) IsNull() bool { return r.json == "" }

func valueResult(v spec.Value) Result { return Result{json: string(v.AppendJSON(nil))} }

func intResult(n int64) Result { return Result{json: strconv.FormatInt(n, 10)} }

// avgDecimals is the number of decimals of avg.
const avgDecimals = 6

// Result returns the answer of agg (a spec.Agg* name) over s.
func (s *State) Result(agg string) Result {
	switch agg {
	case spec.AggCount:
		return intResult(s.count)
	case spec.AggDistinctCount:
		return intResult(s.distinct.estimate())
	case spec.AggSum:
		if s.sumOverflow {
			return Result{}
		}
		return Result{json: s.sum.big().String()}
	case spec.AggAvg:
		return s.avg()
	case spec.AggMin, spec.AggMax:
		return s.extreme(agg == spec.AggMin)
	case spec.AggLast:
		if s.hasLast {
			return valueResult(s.last)
		}
	}
	return Result{}
}

func (s *State) extreme(min bool) Result {
	switch {
	case s.ints > 0 && min:
		return valueResult(spec.IntValue(s.minInt))
	case s.ints > 0:
		return valueResult(spec.IntValue(s.maxInt))
	case s.hasStr && min:
		return valueResult(spec.StringValue(s.minStr))
	case s.hasStr:
		return valueResult(spec.StringValue(s.maxStr))
	}
	return Result{}
}

// avg divides exactly: q, r = |sum|·10^6 / n, rounded half to even.
func (s *State) avg() Result {
	if s.ints == 0 || s.sumOverflow {
		return Result{}
	}
	sum := s.sum.big()
	neg := sum.Sign() < 0
	sum.Abs(sum)
	n := big.NewInt(s.ints)
	scaled := new(big.Int).Mul(sum, big.NewInt(1_000_000))
	q, r := new(big.Int).QuoRem(scaled, n, new(big.Int))
	switch c := new(big.Int).Lsh(r, 1).Cmp(n); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		q.Add(q, big.NewInt(1))
	}
	digits := q.String()
	if len(digits) <= avgDecimals {
		digits = strings.Repeat("0", avgDecimals+1-len(digits)) + digits
	}
	out := digits[:len(digits)-avgDecimals] + "." + digits[len(digits)-avgDecimals:]
	if neg && q.Sign() != 0 {
		out = "-" + out
	}
	return Result{json: strconv.Quote(out)}
}
