package amount_test

import (
	"flag"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/amount"
)

var seedFlag = flag.Uint64("amount.seed", 0, "seed for randomized amount tests (0: derive from the clock)")

// newRand returns a seeded generator and logs the seed, so that a failure
// replays with -amount.seed.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -amount.seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// randAmount returns a value of uniformly random bit length in [0, 128], so
// that small, 64-bit-boundary and huge values are all common.
func randAmount(r *rand.Rand) amount.Uint128 {
	v := amount.Uint128{Hi: r.Uint64(), Lo: r.Uint64()}
	switch n := r.IntN(129); {
	case n == 0:
		return amount.Uint128{}
	case n <= 64:
		return amount.Uint128{Lo: v.Lo >> (64 - n)}
	default:
		return amount.Uint128{Hi: v.Hi >> (128 - n), Lo: v.Lo}
	}
}

func toBig(v amount.Uint128) *big.Int {
	b := new(big.Int).SetUint64(v.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(v.Lo))
}

func mustBig(t testing.TB, s string) *big.Int {
	t.Helper()
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("bad big.Int literal %q", s)
	}
	return b
}

// Boundary values, spelled out once.
const (
	max64    = "18446744073709551615"                    // 2^64-1
	pow64    = "18446744073709551616"                    // 2^64
	max128   = "340282366920938463463374607431768211455" // 2^128-1
	pow128   = "340282366920938463463374607431768211456" // 2^128
	pow10_38 = "100000000000000000000000000000000000000" // 10^38
)

var (
	two64  = amount.Uint128{Hi: 1}
	maxU64 = amount.FromUint64(^uint64(0))
	one    = amount.FromUint64(1)
)
