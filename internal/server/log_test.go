package server_test

import (
	"log/slog"
	"os"
	"time"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func sleep(t interface{ Helper() }) { time.Sleep(25 * time.Millisecond) }

func osReadFile(p string) ([]byte, error) { return os.ReadFile(p) }
