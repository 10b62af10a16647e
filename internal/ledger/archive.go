package ledger

// Archiving moves finished months of entries out of the database into
// JSON-lines files. It must never lose an entry, whatever step a crash or a
// second run hits, so every month goes through one database transaction:
//
//  1. LOCK the month's partition IN SHARE ROW EXCLUSIVE MODE: writers into
//     it wait, readers don't, and a second archiver of the same month waits
//     for the first (the mode conflicts with itself).
//  2. Write the rows to a temporary file next to the final one, hashing
//     what is written (SHA-256), and fsync it.
//  3. Verify: re-read the file, check every line is JSON, and compare its
//     line count and hash with what was streamed from the database, and the
//     count with SELECT count(*) under the same lock.
//  4. Publish it under its final name with link(2), which fails rather than
//     replace an existing file, then fsync the directory so the name is
//     durable before the database forgets the rows.
//  5. Write the per-account checkpoints (entry_archives), detach and drop
//     the partition, and record the month with its file, row count and hash
//     in archived_partitions; commit.
//
// A crash before the commit leaves the partition attached (the transaction
// aborts), possibly a temporary file (removed by the next run) and possibly
// the final file: the next run finds it, checks it against the partition
// byte for byte (hash and count) and adopts it, or refuses to go on if it
// differs; it never overwrites it. A crash after the commit leaves the month
// recorded: the next run checks its file against the recorded hash and
// reports it as already archived. So every entry is at all times either in
// the database or in a verified, fsynced file named in archived_partitions.
//
// Which months may be archived: those that can receive no more entries. An
// entry's created_at is the database's clock_timestamp() read by the batch
// that writes it, after its row locks, never a client's time; async journal
// requests, pending expiries and posts of old pendings are all applied with
// the clock of the batch that applies them. So a month can still receive
// entries only from a batch that read the clock before the month ended and
// has not committed yet. Archive therefore refuses any `before` later than
// the database's now minus Grace (an hour by default: far longer than any
// batch, which holds its row locks for milliseconds), which excludes the
// current month always, and refuses a month some of whose entries sit in
// the default partition (written while its partition was missing).

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultArchiveGrace is how long after a month's end Archive waits before
// it may archive the month (see the note at the top of this file).
const DefaultArchiveGrace = time.Hour

// Archive errors, for errors.Is.
var (
	// ErrArchiveTooRecent: the requested range reaches months that may still
	// receive entries. Nothing was archived.
	ErrArchiveTooRecent = errors.New("ledger: archive: month not finished")
	// ErrArchiveConflict: the files and the database disagree in a way
	// Archive will not repair by itself (an existing file that does not
	// match its partition, a recorded file that is missing or changed, a
	// recorded month whose partition exists again). Nothing was overwritten.
	ErrArchiveConflict = errors.New("ledger: archive: conflict")
)

// ArchiveStep names a point in the archiving of one month, for fault
// injection (ArchiveConfig.Failpoint).
type ArchiveStep string

// Steps in the order they happen.
const (
	ArchiveStepLocked       ArchiveStep = "locked"       // partition locked, nothing written
	ArchiveStepWritten      ArchiveStep = "written"      // temporary file written, not fsynced
	ArchiveStepSynced       ArchiveStep = "synced"       // temporary file fsynced
	ArchiveStepVerified     ArchiveStep = "verified"     // temporary file re-read and checked
	ArchiveStepRenamed      ArchiveStep = "renamed"      // final file in place, directory fsynced
	ArchiveStepCheckpointed ArchiveStep = "checkpointed" // entry_archives written, partition attached
	ArchiveStepDropped      ArchiveStep = "dropped"      // partition dropped and recorded, not committed
	ArchiveStepCommitted    ArchiveStep = "committed"    // transaction committed
)

// ArchiveSteps lists every step in order.
var ArchiveSteps = []ArchiveStep{ArchiveStepLocked, ArchiveStepWritten, ArchiveStepSynced, ArchiveStepVerified,
	ArchiveStepRenamed, ArchiveStepCheckpointed, ArchiveStepDropped, ArchiveStepCommitted}

// ArchiveConfig says what to archive.
type ArchiveConfig struct {
	// Before: archive the monthly partitions whose range ends on or before
	// it. Required; at most the database's now minus Grace.
	Before time.Time
	// Dir receives the files, one per month, named <partition>.jsonl.
	// Required; created if missing.
	Dir string
	// Grace is how long a month must have ended before it may be archived.
	// Zero means DefaultArchiveGrace.
	Grace time.Duration
	// Failpoint, when set, is called at each step of each month: tests use
	// it to crash the archiver there. Nil in production.
	Failpoint func(month string, step ArchiveStep)
}

// ArchivedPartition describes one archived month.
type ArchivedPartition struct {
	Name   string    `json:"name"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	File   string    `json:"file"`
	Rows   int64     `json:"rows"`
	SHA256 string    `json:"sha256"`
	// Already is true when an earlier run archived the month; this run only
	// checked that its file is still there and unchanged.
	Already bool `json:"already"`
}

var partitionPattern = regexp.MustCompile(`^entries_y(\d{4})m(\d{2})$`)

// Archive archives every finished monthly partition that ends on or before
// cfg.Before (see the note at the top of this file for the steps and the
// guarantees). It is idempotent: months archived by an earlier run are
// checked and reported with Already set. It stops at the first month that
// fails and returns the months done so far.
func Archive(ctx context.Context, pool *pgxpool.Pool, cfg ArchiveConfig) ([]ArchivedPartition, error) {
	if cfg.Before.IsZero() || cfg.Dir == "" {
		return nil, errors.New("ledger: archive: Before and Dir are required")
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultArchiveGrace
	}
	var now time.Time
	if err := pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now); err != nil {
		return nil, fmt.Errorf("archive: read database clock: %w", err)
	}
	if latest := now.Add(-cfg.Grace); cfg.Before.After(latest) {
		return nil, fmt.Errorf("%w: %s is later than the database's now (%s) minus %s: months ending then may still "+
			"receive entries; the latest month that can be archived ends on %s", ErrArchiveTooRecent,
			cfg.Before.Format(time.RFC3339), now.UTC().Format(time.RFC3339), cfg.Grace, monthStart(latest).Format("2006-01-02"))
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("archive: dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("archive: create dir: %w", err)
	}
	// The directory's own name must be durable before files in it count.
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	months, err := archivableMonths(ctx, pool, cfg.Before)
	if err != nil {
		return nil, err
	}
	var done []ArchivedPartition
	for _, name := range months {
		ap, err := archiveMonth(ctx, pool, cfg, dir, name)
		if err != nil {
			return done, fmt.Errorf("archive %s: %w", name, err)
		}
		done = append(done, ap)
	}
	return done, nil
}

// archivableMonths returns the names of the monthly partitions, attached or
// already archived, whose range ends on or before before, oldest first.
func archivableMonths(ctx context.Context, pool *pgxpool.Pool, before time.Time) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'entries'::regclass
		UNION SELECT name FROM archived_partitions
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("archive: list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("archive: list partitions: %w", err)
	}
	var out []string
	for _, name := range names {
		if _, to, ok := monthRange(name); ok && !to.After(before) {
			out = append(out, name) // the default partition never matches
		}
	}
	return out, nil
}

func monthRange(name string) (from, to time.Time, ok bool) {
	m := partitionPattern.FindStringSubmatch(name)
	if m == nil {
		return from, to, false
	}
	from, err := time.Parse("2006-01", m[1]+"-"+m[2])
	if err != nil {
		return from, to, false
	}
	return from, from.AddDate(0, 1, 0), true
}

// archiveMonth archives one month in one transaction, or checks the file of
// a month archived earlier.
func archiveMonth(ctx context.Context, pool *pgxpool.Pool, cfg ArchiveConfig, dir, name string) (ArchivedPartition, error) {
	from, to, _ := monthRange(name)
	ap := ArchivedPartition{Name: name, From: from, To: to, File: filepath.Join(dir, name+".jsonl")}
	fail := func(step ArchiveStep) {
		if cfg.Failpoint != nil {
			cfg.Failpoint(name, step)
		}
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		recorded, attached, err := monthState(ctx, tx, &ap)
		switch {
		case err != nil:
			return err
		case recorded && attached:
			return fmt.Errorf("%w: archived_partitions says %s was archived to %s, but the partition exists again "+
				"(recreated after an archive by an older version?); move its rows out by hand", ErrArchiveConflict, name, ap.File)
		case recorded:
			ap.Already = true
			return checkRecordedFile(ap)
		case !attached:
			return fmt.Errorf("%w: partition %s vanished without being recorded as archived", ErrArchiveConflict, name)
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE "+name+" IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		fail(ArchiveStepLocked)
		if err := checkDefaultPartition(ctx, tx, from, to); err != nil {
			return err
		}
		if err := publishFile(ctx, tx, &ap, fail); err != nil {
			return err
		}
		fail(ArchiveStepRenamed)
		return dropMonth(ctx, tx, ap, fail)
	})
	if err != nil {
		return ap, err
	}
	if !ap.Already {
		fail(ArchiveStepCommitted)
	}
	return ap, nil
}

// monthState reads whether the month is recorded as archived (filling ap's
// file, rows and hash from the record) and whether its partition is
// attached.
func monthState(ctx context.Context, tx pgx.Tx, ap *ArchivedPartition) (recorded, attached bool, err error) {
	var sum *string
	err = tx.QueryRow(ctx, "SELECT file, rows, sha256 FROM archived_partitions WHERE name = $1", ap.Name).
		Scan(&ap.File, &ap.Rows, &sum)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return false, false, fmt.Errorf("read archived_partitions: %w", err)
	default:
		recorded = true
		if sum != nil {
			ap.SHA256 = *sum
		}
	}
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", ap.Name).Scan(&attached); err != nil {
		return false, false, fmt.Errorf("look up partition: %w", err)
	}
	return recorded, attached, nil
}

// checkRecordedFile checks that the file of a month archived earlier is
// still there with its recorded rows and hash (rows only for months
// archived before hashes were recorded).
func checkRecordedFile(ap ArchivedPartition) error {
	n, sum, err := hashFile(ap.File)
	if err != nil {
		return fmt.Errorf("%w: recorded archive file: %w", ErrArchiveConflict, err)
	}
	if n != ap.Rows || (ap.SHA256 != "" && sum != ap.SHA256) {
		return fmt.Errorf("%w: archive file %s has %d rows (sha256 %s), archived_partitions records %d rows (sha256 %s)",
			ErrArchiveConflict, ap.File, n, sum, ap.Rows, ap.SHA256)
	}
	return nil
}

// checkDefaultPartition refuses a month some of whose entries were written
// to the default partition: archiving the monthly partition would leave
// them behind, after its checkpoints.
func checkDefaultPartition(ctx context.Context, tx pgx.Tx, from, to time.Time) error {
	var stray bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM entries_default WHERE created_at >= $1 AND created_at < $2)",
		from, to).Scan(&stray); err != nil {
		return fmt.Errorf("check default partition: %w", err)
	}
	if stray {
		return fmt.Errorf("%w: entries of %s are in the default partition entries_default (written while the month's "+
			"partition was missing); move them into it first", ErrArchiveConflict, from.Format("2006-01"))
	}
	return nil
}

// publishFile makes ap.File hold exactly the partition's rows, durably: it
// adopts an existing file that matches them, refuses one that does not,
// and otherwise writes, verifies and links a new one. It sets ap.Rows and
// ap.SHA256. The caller holds the partition's lock, so the rows cannot
// change meanwhile.
func publishFile(ctx context.Context, tx pgx.Tx, ap *ArchivedPartition, fail func(ArchiveStep)) error {
	var count int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+ap.Name).Scan(&count); err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	if err := removeTemps(ap.File); err != nil {
		return err
	}
	if _, err := os.Stat(ap.File); err == nil {
		return adoptFile(ctx, tx, ap, count)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat archive file: %w", err)
	}
	tmp, n, sum, err := writeTemp(ctx, tx, ap, fail)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after the link, or after a failure
	fn, fsum, err := hashFile(tmp)
	if err != nil {
		return fmt.Errorf("verify %s: %w", tmp, err)
	}
	if fn != n || fsum != sum || n != count {
		return fmt.Errorf("verify %s: %d lines (sha256 %s) read back, %d written (sha256 %s), %d rows in the partition",
			tmp, fn, fsum, n, sum, count)
	}
	fail(ArchiveStepVerified)
	// link(2) publishes the file under its final name and, unlike rename,
	// fails if that name exists: an archive is never overwritten.
	if err := os.Link(tmp, ap.File); err != nil {
		return fmt.Errorf("publish archive file: %w", err)
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("remove temporary file: %w", err)
	}
	ap.Rows, ap.SHA256 = n, sum
	return syncDir(filepath.Dir(ap.File))
}

// adoptFile accepts an archive file left by a run that crashed after
// publishing it and before its commit, if it holds exactly the partition's
// rows; any other file is refused, never overwritten.
func adoptFile(ctx context.Context, tx pgx.Tx, ap *ArchivedPartition, count int64) error {
	h := sha256.New()
	n, err := streamRows(ctx, tx, ap.Name, h)
	if err != nil {
		return err
	}
	want := hex.EncodeToString(h.Sum(nil))
	fn, fsum, err := hashFile(ap.File)
	if err != nil {
		return fmt.Errorf("%w: existing archive file: %w", ErrArchiveConflict, err)
	}
	if fn != n || fsum != want || n != count {
		return fmt.Errorf("%w: %s already exists and does not hold partition %s (%d lines, sha256 %s; partition: %d rows, "+
			"sha256 %s); it is left alone: move it away and rerun", ErrArchiveConflict, ap.File, ap.Name, fn, fsum, n, want)
	}
	ap.Rows, ap.SHA256 = n, want
	// The crashed run may have died before its directory fsync.
	return syncDir(filepath.Dir(ap.File))
}

// writeTemp writes the partition's rows to a new temporary file next to
// the final one and fsyncs it; it returns its path, line count and hash.
func writeTemp(ctx context.Context, tx pgx.Tx, ap *ArchivedPartition, fail func(ArchiveStep)) (string, int64, string, error) {
	tmp := ap.File + ".tmp-" + rand.Text()[:8]
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", 0, "", fmt.Errorf("create temporary file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	n, err := streamRows(ctx, tx, ap.Name, w)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		os.Remove(tmp)
		return "", 0, "", fmt.Errorf("write %s: %w", tmp, err)
	}
	fail(ArchiveStepWritten)
	if err := f.Sync(); err != nil {
		os.Remove(tmp)
		return "", 0, "", fmt.Errorf("fsync %s: %w", tmp, err)
	}
	fail(ArchiveStepSynced)
	return tmp, n, hex.EncodeToString(h.Sum(nil)), nil
}

// streamRows writes the partition's rows to w as JSON lines in a fixed
// order (account chain order), the archive file format.
func streamRows(ctx context.Context, tx pgx.Tx, name string, w io.Writer) (int64, error) {
	rows, err := tx.Query(ctx, `SELECT row_to_json(e)::text FROM `+name+` e ORDER BY tenant_id, account_id, seq`)
	if err != nil {
		return 0, fmt.Errorf("read rows: %w", err)
	}
	defer rows.Close()
	var n int64
	var line []byte
	for rows.Next() {
		if err := rows.Scan(&line); err != nil {
			return n, fmt.Errorf("read row %d: %w", n, err)
		}
		if _, err := w.Write(line); err != nil {
			return n, err
		}
		if _, err := w.Write(newline); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read rows: %w", err)
	}
	return n, nil
}

var newline = []byte{'\n'}

// hashFile re-reads an archive file: every line must be a JSON object. It
// returns the line count and the file's SHA-256.
func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := countJSONLines(io.TeeReader(f, h))
	if err != nil {
		return n, "", fmt.Errorf("%s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// maxArchiveLine bounds one line of an archive file: an entry row is a few
// hundred bytes (ids of at most a few hundred bytes, six 39-digit numbers).
const maxArchiveLine = 1 << 20

func countJSONLines(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxArchiveLine)
	var n int64
	for sc.Scan() {
		if line := sc.Bytes(); len(line) == 0 || line[0] != '{' || !json.Valid(line) {
			return n, fmt.Errorf("line %d is not a JSON object", n+1)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, err
	}
	return n, nil
}

// removeTemps removes temporary files a crashed run left for this archive
// file. The caller holds the partition's lock, so no live run owns them.
func removeTemps(file string) error {
	temps, err := filepath.Glob(file + ".tmp-*")
	if err != nil {
		return fmt.Errorf("find temporary files: %w", err)
	}
	for _, t := range temps {
		if err := os.Remove(t); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale temporary file: %w", err)
		}
	}
	return nil
}

// dropMonth writes the checkpoints, drops the partition and records the
// month, in the caller's transaction.
func dropMonth(ctx context.Context, tx pgx.Tx, ap ArchivedPartition, fail func(ArchiveStep)) error {
	if _, err := tx.Exec(ctx, `INSERT INTO entry_archives AS a (tenant_id, account_id, seq, debits_posted,
			credits_posted, debits_pending, credits_pending, last_entry_at, archived_before)
		SELECT DISTINCT ON (tenant_id, account_id) tenant_id, account_id, seq, debits_posted, credits_posted,
			debits_pending, credits_pending, created_at, $1::timestamptz
		FROM `+ap.Name+` ORDER BY tenant_id, account_id, seq DESC
		ON CONFLICT (tenant_id, account_id) DO UPDATE SET seq = excluded.seq,
			debits_posted = excluded.debits_posted, credits_posted = excluded.credits_posted,
			debits_pending = excluded.debits_pending, credits_pending = excluded.credits_pending,
			last_entry_at = excluded.last_entry_at, archived_before = excluded.archived_before
		WHERE a.seq < excluded.seq`, ap.To); err != nil {
		return fmt.Errorf("checkpoints: %w", err)
	}
	fail(ArchiveStepCheckpointed)
	for _, sql := range []string{"ALTER TABLE entries DETACH PARTITION " + ap.Name, "DROP TABLE " + ap.Name} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", strings.Fields(sql)[0], err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO archived_partitions (name, range_from, range_to, file, rows, sha256)
		VALUES ($1, $2, $3, $4, $5, $6)`, ap.Name, ap.From, ap.To, ap.File, ap.Rows, ap.SHA256); err != nil {
		return fmt.Errorf("record archive: %w", err)
	}
	fail(ArchiveStepDropped)
	return nil
}

// syncDir fsyncs a directory, making the names in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
