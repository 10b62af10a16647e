package exportbench

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestRunReportsEveryFigure runs a small benchmark and checks that the
// report holds every row the issue asks for, with plausible values (the
// figures themselves are the program's output, never asserted).
func TestRunReportsEveryFigure(t *testing.T) {
	rep, err := Run(context.Background(), Config{PostgresURL: pgtest.NewDB(t), Dir: t.TempDir(), Rows: 20_000,
		Duration: 300 * time.Millisecond, HugeRate: 1000}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ metric, mode string }{
		{"rows_per_sec", "csv"}, {"rows_per_sec", "jsonl"}, {"rows_per_sec", "copy"}, {"rss_peak_bytes", "csv"},
		{"small_export_p99_ms", ModeAlone}, {"small_export_p99_ms", ModeWithHuge}, {"small_export_p99_ms", ModeShared},
		{"ledger_write_p99_ms", ModeAlone}, {"ledger_write_p99_ms", ModeWithHuge}, {"ledger_write_p99_ms", ModeShared},
	} {
		if v := rep.get(want.metric, want.mode); !(v > 0) {
			t.Errorf("%s %s = %v", want.metric, want.mode, v)
		}
	}
	if len(rep.Checks) != 6 {
		t.Errorf("%d checks", len(rep.Checks))
	}
}
