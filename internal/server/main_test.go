package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

// TestMain doubles as the server child of the crash test: with
// BULWARK_TEST_CHILD_POSTGRES set, the test binary runs `serve` and nothing
// else, so the test can SIGKILL a real server process.
func TestMain(m *testing.M) {
	if url := os.Getenv("BULWARK_TEST_CHILD_POSTGRES"); url != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		roles, dataDir := []string{server.RoleAPI, server.RoleWorkers}, os.TempDir()
		if v := os.Getenv("BULWARK_TEST_CHILD_ROLES"); v != "" {
			roles = strings.Split(v, ",")
		}
		if v := os.Getenv("BULWARK_TEST_CHILD_DATA_DIR"); v != "" {
			dataDir = v
		}
		cfg := server.Config{
			Addr: os.Getenv("BULWARK_TEST_CHILD_ADDR"), PostgresURL: url, Roles: roles,
			KafkaBrokers: broker.Seeds(os.Getenv("BULWARK_TEST_CHILD_KAFKA")),
			AdminKey:     os.Getenv("BULWARK_TEST_CHILD_ADMIN_KEY"), DataDir: dataDir,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		}
		cfg.Features.SessionTimeout = 2 * time.Second
		cfg.Features.TaskPoll = 100 * time.Millisecond
		cfg.Features.ChunkEvents = 5 // backfills of a few thousand events span several SIGKILLs
		cfg.Features.TaskLease = 2 * time.Second
		err := server.Run(ctx, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(pgtest.Main(m))
}
