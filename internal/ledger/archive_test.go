package ledger_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
)

// agedLedger is a ledger whose first two entries of each of two accounts
// (4 entries) lie in January 2020, the rest in the current month.
type agedLedger struct {
	*fixture
	jan        time.Time
	janBalance string // b's posted balance as of jan + 1h
}

const (
	janPartition = "entries_y2020m01"
	janEntries   = 4
)

var archiveBefore = time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC)

func newAgedLedger(t *testing.T) *agedLedger {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t, "acme")
	f.account(t, "acme", "a", "none")
	f.account(t, "acme", "b", "none")
	for i := range 5 {
		f.submit(t, "acme", transfer(fmt.Sprint("k", i), "a", "b", "10"))
	}
	jan := time.Date(2020, 1, 15, 0, 0, 0, 0, time.UTC)
	if err := ledger.EnsurePartitions(ctx, f.pool, jan); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, "UPDATE entries SET created_at = $1::timestamptz + seq * interval '1 second' WHERE seq <= 2", jan); err != nil {
		t.Fatal(err)
	}
	b, err := f.store.BalanceAt(ctx, "acme", "b", jan.Add(time.Hour))
	if err != nil || b.Posted != "20" {
		t.Fatalf("balance as of January before archiving: %s (%v), want 20", b.Posted, err)
	}
	return &agedLedger{fixture: f, jan: jan, janBalance: b.Posted}
}

// checkArchived asserts the end state of archiving January: the file holds
// its 4 entries and nothing else is left in dir, the partition is gone, the
// month is recorded with the file's hash, reads and invariants hold, and
// new transfers still chain on.
func (l *agedLedger) checkArchived(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	file := filepath.Join(dir, janPartition+".jsonl")
	if n := countLines(t, file); n != janEntries {
		t.Fatalf("archive file has %d lines, want %d", n, janEntries)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Fatalf("archive dir holds %v, want only %s.jsonl (no temporary files)", names, janPartition)
	}
	var rows int64
	var sum string
	if err := l.pool.QueryRow(ctx, "SELECT rows, sha256 FROM archived_partitions WHERE name = $1", janPartition).Scan(&rows, &sum); err != nil {
		t.Fatalf("archived_partitions: %v", err)
	}
	if rows != janEntries || sum != fileSHA(t, file) {
		t.Fatalf("recorded %d rows sha256 %s; file has sha256 %s", rows, sum, fileSHA(t, file))
	}
	if partitionExists(t, l.pool, janPartition) {
		t.Fatal("archived partition still exists")
	}
	if a := balances(t, l.fixture, "acme", "b"); a.Posted != "50" || a.Seq != 5 {
		t.Fatalf("b after archive: posted=%s seq=%d", a.Posted, a.Seq)
	}
	after, err := l.store.BalanceAt(ctx, "acme", "b", l.jan.Add(time.Hour))
	if err != nil || after.Posted != l.janBalance {
		t.Fatalf("balance as of January after archiving: %s (%v), want %s", after.Posted, err, l.janBalance)
	}
	es, err := l.store.Entries(ctx, "acme", "b", 0, 10)
	if err != nil || len(es) != 3 || es[0].Seq != 3 {
		t.Fatalf("history after archive: %d entries (%v), want seq 3..5", len(es), err)
	}
	mustVerify(t, l.fixture)
	l.submit(t, "acme", transfer(fmt.Sprint("late-", time.Now().UnixNano()), "a", "b", "1"))
	mustVerify(t, l.fixture)
}

func TestArchiveKeepsBalancesAndChainsVerifiable(t *testing.T) {
	t.Parallel()
	l := newAgedLedger(t)
	dir := t.TempDir()
	done, err := ledger.Archive(context.Background(), l.pool, ledger.ArchiveConfig{Before: archiveBefore, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0].Name != janPartition || done[0].Rows != janEntries || done[0].Already {
		t.Fatalf("archived %+v, want %s with %d rows", done, janPartition, janEntries)
	}
	l.checkArchived(t, dir)
}

// TestArchiveTwice is the report: a second run with the same
// --before truncated the file and failed on archived_partitions_pkey. Now
// it checks the file and reports the month as already archived.
func TestArchiveTwice(t *testing.T) {
	t.Parallel()
	l := newAgedLedger(t)
	ctx := context.Background()
	dir := t.TempDir()
	cfg := ledger.ArchiveConfig{Before: archiveBefore, Dir: dir}
	first, err := ledger.Archive(ctx, l.pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, janPartition+".jsonl")
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	second, err := ledger.Archive(ctx, l.pool, cfg)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if len(second) != 1 || !second[0].Already || second[0].SHA256 != first[0].SHA256 || second[0].Rows != janEntries {
		t.Fatalf("second run: %+v, want %s already archived with sha256 %s", second, janPartition, first[0].SHA256)
	}
	if again, _ := os.ReadFile(file); !bytes.Equal(again, content) {
		t.Fatal("second run changed the archive file")
	}
	l.checkArchived(t, dir)

	// A recorded file that was damaged is reported, not silently accepted.
	if err := os.WriteFile(file, content[:len(content)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Archive(ctx, l.pool, cfg); !errors.Is(err, ledger.ErrArchiveConflict) {
		t.Fatalf("run over a truncated archive file: %v, want ErrArchiveConflict", err)
	}
}

// TestArchiveRefusesUnfinishedMonths: the current month, and any --before
// less than the grace in the past, are refused without touching anything.
func TestArchiveRefusesUnfinishedMonths(t *testing.T) {
	t.Parallel()
	l := newAgedLedger(t)
	ctx := context.Background()
	now := time.Now().UTC()
	nextMonth := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	for _, before := range []time.Time{nextMonth, now, now.Add(-ledger.DefaultArchiveGrace / 2)} {
		dir := t.TempDir()
		done, err := ledger.Archive(ctx, l.pool, ledger.ArchiveConfig{Before: before, Dir: dir})
		if !errors.Is(err, ledger.ErrArchiveTooRecent) || len(done) != 0 {
			t.Fatalf("before %s: archived %+v, err %v; want ErrArchiveTooRecent", before, done, err)
		}
		if names := dirNames(t, dir); len(names) != 0 {
			t.Fatalf("before %s: wrote %v", before, names)
		}
	}
	var total int
	if err := l.pool.QueryRow(ctx, "SELECT count(*) FROM entries").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 10 || partitionRows(t, l.pool, janPartition) != janEntries {
		t.Fatalf("a refused run removed entries: %d of 10 left", total)
	}
	mustVerify(t, l.fixture)
}

// TestArchiveNeverOverwrites: a file in the way that does not hold the
// partition's rows is left alone and the month is not archived.
func TestArchiveNeverOverwrites(t *testing.T) {
	t.Parallel()
	l := newAgedLedger(t)
	dir := t.TempDir()
	file := filepath.Join(dir, janPartition+".jsonl")
	foreign := []byte(`{"not":"this partition"}` + "\n")
	if err := os.WriteFile(file, foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ledger.Archive(context.Background(), l.pool, ledger.ArchiveConfig{Before: archiveBefore, Dir: dir})
	if !errors.Is(err, ledger.ErrArchiveConflict) {
		t.Fatalf("err = %v, want ErrArchiveConflict", err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, foreign) {
		t.Fatal("the existing file was overwritten")
	}
	if n := partitionRows(t, l.pool, janPartition); n != janEntries {
		t.Fatalf("partition holds %d rows after a refused archive, want %d", n, janEntries)
	}
	mustVerify(t, l.fixture)
}

// TestArchiveRefusesRecreatedPartition: what an older version left behind
// (the month recorded as archived and its partition created again) is
// reported, and the archive file is not touched.
func TestArchiveRefusesRecreatedPartition(t *testing.T) {
	t.Parallel()
	l := newAgedLedger(t)
	ctx := context.Background()
	dir := t.TempDir()
	cfg := ledger.ArchiveConfig{Before: archiveBefore, Dir: dir}
	if _, err := ledger.Archive(ctx, l.pool, cfg); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, janPartition+".jsonl")
	content, _ := os.ReadFile(file)
	if err := ledger.EnsurePartitions(ctx, l.pool, l.jan); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Archive(ctx, l.pool, cfg); !errors.Is(err, ledger.ErrArchiveConflict) {
		t.Fatalf("err = %v, want ErrArchiveConflict", err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, content) {
		t.Fatal("the archive file changed")
	}
}

// Environment of the archive helper process (see TestMain).
const (
	archiveHelperEnv = "BULWARK_ARCHIVE_HELPER_URL"
	archiveDirEnv    = "BULWARK_ARCHIVE_HELPER_DIR"
	archiveKillEnv   = "BULWARK_ARCHIVE_HELPER_KILL_AT"
)

// archiveHelperMain runs in a child process of TestArchiveSurvivesKill: it
// archives January and SIGKILLs itself at the step named in the
// environment, so nothing (no defer, no rollback) runs after that point.
// Its exit status is 0 only if it was never killed.
func archiveHelperMain() int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(archiveHelperEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	killAt := ledger.ArchiveStep(os.Getenv(archiveKillEnv))
	_, err = ledger.Archive(ctx, pool, ledger.ArchiveConfig{Before: archiveBefore, Dir: os.Getenv(archiveDirEnv),
		Failpoint: func(_ string, step ledger.ArchiveStep) {
			if step == killAt {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	return 0
}

// TestArchiveSurvivesKill SIGKILLs a real archiver process at every step,
// then checks that no entry is lost (each is still in the database or in a
// verified archive file named in archived_partitions) and that a rerun
// completes the archive with reads and invariants intact.
func TestArchiveSurvivesKill(t *testing.T) {
	t.Parallel()
	for _, step := range ledger.ArchiveSteps {
		t.Run(string(step), func(t *testing.T) {
			t.Parallel()
			l := newAgedLedger(t)
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), archiveHelperEnv+"="+l.pool.Config().ConnString(),
				archiveDirEnv+"="+dir, archiveKillEnv+"="+string(step))
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper was not killed at %s: %v\n%s", step, err, out)
			}
			l.checkNothingLost(t)
			done, err := ledger.Archive(context.Background(), l.pool, ledger.ArchiveConfig{Before: archiveBefore, Dir: dir})
			if err != nil {
				t.Fatalf("rerun after a kill at %s: %v", step, err)
			}
			wantAlready := step == ledger.ArchiveStepCommitted
			if len(done) != 1 || done[0].Already != wantAlready {
				t.Fatalf("rerun archived %+v, want %s with Already=%v", done, janPartition, wantAlready)
			}
			l.checkArchived(t, dir)
		})
	}
}

// checkNothingLost asserts that January's entries are all either still in
// their partition (not recorded as archived) or in the recorded file whose
// content matches the recorded hash (partition gone).
func (l *agedLedger) checkNothingLost(t *testing.T) {
	t.Helper()
	var file string
	var rows int64
	var sum string
	err := l.pool.QueryRow(context.Background(), "SELECT file, rows, sha256 FROM archived_partitions WHERE name = $1",
		janPartition).Scan(&file, &rows, &sum)
	if err != nil {
		if n := partitionRows(t, l.pool, janPartition); n != janEntries {
			t.Fatalf("not recorded as archived (%v) and the partition holds %d of %d entries", err, n, janEntries)
		}
		mustVerify(t, l.fixture)
		return
	}
	if partitionExists(t, l.pool, janPartition) {
		t.Fatal("recorded as archived and still attached")
	}
	if n := countLines(t, file); n != janEntries || rows != janEntries || fileSHA(t, file) != sum {
		t.Fatalf("recorded %d rows sha256 %s; file %s has %d lines sha256 %s", rows, sum, file, n, fileSHA(t, file))
	}
}

func partitionExists(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func partitionRows(t *testing.T, pool *pgxpool.Pool, name string) int64 {
	t.Helper()
	if !partitionExists(t, pool, name) {
		return -1
	}
	var n int64
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	return n
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
