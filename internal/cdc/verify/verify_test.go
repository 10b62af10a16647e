package verify_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/cdc/verify"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

// TestMain doubles as the relay child: Run re-executes this test binary
// with verify.ChildEnv set.
func TestMain(m *testing.M) {
	if os.Getenv(verify.ChildEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := verify.RunChild(ctx, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(pgtest.Main(m))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// TestVerify is the short crash test of the change stream (5 SIGKILLs);
// BULWARK_CDC_VERIFY_KILLS and BULWARK_CDC_VERIFY_SEED make it longer or
// replay a failure.
func TestVerify(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("BULWARK_CDC_VERIFY_SEED"), 10, 64); err == nil {
		seed = s
	}
	kills := envInt("BULWARK_CDC_VERIFY_KILLS", 5)
	t.Logf("seed %d (replay: BULWARK_CDC_VERIFY_SEED=%d), kills %d", seed, seed, kills)
	dir := t.TempDir()
	rep, err := verify.Run(context.Background(), verify.Config{
		PostgresURL: pgtest.NewEmptyDB(t),
		Seed:        seed,
		Kills:       kills,
		MinTxns:     envInt("BULWARK_CDC_VERIFY_TXNS", 300),
		Dir:         dir,
		Relay: func(env []string) *exec.Cmd {
			return exec.Command(os.Args[0], "-test.run=^$")
		},
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	t.Logf("report: seed %d kills %d faults %q relay self-exits %d snapshot resumes %d txns %d changes %d events %d violations %d in %.1fs",
		rep.Seed, rep.Kills, rep.Faults, rep.SelfExits, rep.SnapshotResumes, rep.Txns, rep.Changes, rep.Events, len(rep.Violations), rep.DurationSec)
	if err != nil {
		for i, v := range rep.Violations {
			if i == 20 {
				break
			}
			t.Log(v)
		}
		t.Fatalf("seed %d: %v", seed, err)
	}
}
