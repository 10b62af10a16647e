package cdcbench_test

import (
	"context"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/bench/cdcbench"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestQuick runs the benchmark small: it must complete and report both
// modes. No figure is asserted (benchmarks report, they do not judge).
func TestQuick(t *testing.T) {
	rows, out := 3000, io.Discard
	if n, err := strconv.Atoi(os.Getenv("BULWARK_CDC_BENCH_ROWS")); err == nil {
		rows, out = n, io.Writer(os.Stdout) // a manual run at full size
	}
	rep, err := cdcbench.Run(context.Background(), cdcbench.Config{
		PostgresURL: pgtest.NewEmptyDB(t), Rows: rows, Dir: t.TempDir(), LatencySeconds: 1,
	}, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Results[0].Events != rows || rep.Results[1].Events != rows {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("%+v", rep)
}
