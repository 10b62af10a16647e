package cli_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/cli"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// run executes the bulwark command tree with args and returns its output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := cli.Root()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestMaintenanceRefusesMissingDataDir: run outside the data directory,
// verify used to initialise a fresh cluster there and report "all
// invariants hold" on the empty ledger. Now every command that opens the
// database directly refuses and creates nothing.
func TestMaintenanceRefusesMissingDataDir(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"ledger", "verify"},
		{"ledger", "archive", "--before", "2020-01-01"},
		{"cdc", "status"},
		{"features", "tasks"},
		{"features", "verify"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), ".bulwark")
			out, err := run(t, append(args, "--postgres=", "--data-dir", dataDir)...)
			if !errors.Is(err, server.ErrNoDatabase) {
				t.Fatalf("err = %v (output %q), want ErrNoDatabase", err, out)
			}
			if strings.Contains(out, "invariants hold") {
				t.Fatalf("reported on a ledger that does not exist: %q", out)
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s created the data directory %s (stat: %v)", args, dataDir, err)
			}
		})
	}
}

// TestVerifyRefusesMissingDatabase: an external URL naming a database that
// does not exist is refused, and the database is not created.
func TestVerifyRefusesMissingDatabase(t *testing.T) {
	t.Parallel()
	url := pgtest.ServerURL(t, "no_such_bulwark_db")
	out, err := run(t, "ledger", "verify", "--postgres", url)
	if !errors.Is(err, server.ErrNoDatabase) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v (output %q), want ErrNoDatabase: does not exist", err, out)
	}
	conn, err := pgx.Connect(context.Background(), pgtest.ServerURL(t, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'no_such_bulwark_db')").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("verify created the database")
	}
}

// TestVerifyRefusesEmptyDatabase: a database without the Bulwark schema is
// refused, and the schema is not installed into it.
func TestVerifyRefusesEmptyDatabase(t *testing.T) {
	t.Parallel()
	url := pgtest.NewEmptyDB(t)
	out, err := run(t, "ledger", "verify", "--postgres", url)
	if !errors.Is(err, server.ErrNoDatabase) || !strings.Contains(err.Error(), "no Bulwark schema") {
		t.Fatalf("err = %v (output %q), want ErrNoDatabase: no Bulwark schema", err, out)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("verify created %d tables in an empty database", tables)
	}
}

// TestVerifyRunsOnExistingDatabase: the refusal does not hit a real ledger.
func TestVerifyRunsOnExistingDatabase(t *testing.T) {
	t.Parallel()
	out, err := run(t, "ledger", "verify", "--postgres", pgtest.NewDB(t))
	if err != nil || !strings.Contains(out, "all invariants hold") {
		t.Fatalf("verify on a migrated database: %v, output %q", err, out)
	}
}

// TestArchiveRefusesCurrentMonth: the CLI fails (non-zero exit) rather
// than archive the month still being written.
func TestArchiveRefusesCurrentMonth(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "archive")
	next := time.Now().UTC().AddDate(0, 1, 0).Format("2006-01-02")
	out, err := run(t, "ledger", "archive", "--postgres", pgtest.NewDB(t), "--before", next, "--dir", dir)
	if !errors.Is(err, ledger.ErrArchiveTooRecent) {
		t.Fatalf("archive --before %s: %v (output %q), want ErrArchiveTooRecent", next, err, out)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused archive created %s (stat: %v)", dir, err)
	}
}
