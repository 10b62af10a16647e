package pgserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Who runs a data directory, found from two files and /proc (Linux only,
// like the rest of this package: Pdeathsig and the credentials are Linux's).
//
//   - postmaster.pid (PostgreSQL's lock file): its first line is the
//     postmaster's PID.
//   - ownerFile (ours): the process that started the postmaster as its child
//     holds an exclusive flock(2) on it for as long as it runs the server,
//     and writes its PID in it (for messages). The kernel drops the lock when
//     that process dies, however it dies, so "the lock is free" means "no
//     live owner", with no PID-reuse guesswork; and taking the lock before
//     looking at the postmaster makes concurrent starters take turns.
//     The file is never removed (a removed file could be locked twice).

// ownerFile, inside the data directory (PostgreSQL ignores unknown files
// there), is the owner's lock.
const ownerFile = "bulwark.owner"

// ownerLock is the owner's lock on a data directory, held while open.
type ownerLock struct{ f *os.File }

// lockOwner takes the owner lock of dir without waiting. When another live
// process holds it, it returns a nil lock and that process's PID (0 if
// unreadable). The file is opened close-on-exec (Go's default), so the
// postmaster never inherits the lock and cannot keep it past its owner.
func lockOwner(dir string, cred *syscall.Credential) (*ownerLock, int, error) {
	path := filepath.Join(dir, ownerFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("pgserver: open %s: %w", ownerFile, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := io.ReadAll(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return nil, pid, nil
		}
		return nil, 0, fmt.Errorf("pgserver: lock %s: %w", ownerFile, err)
	}
	if cred != nil {
		// Everything in the data directory belongs to the server's user.
		if err := f.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("pgserver: chown %s: %w", ownerFile, err)
		}
	}
	return &ownerLock{f: f}, 0, nil
}

// record writes this process's PID into the lock file.
func (l *ownerLock) record() error {
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("pgserver: write %s: %w", ownerFile, err)
	}
	if _, err := l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return fmt.Errorf("pgserver: write %s: %w", ownerFile, err)
	}
	return nil
}

// release gives the lock up (closing the file drops the flock).
func (l *ownerLock) release() error { return l.f.Close() }

// livePostmaster returns the PID of the live postmaster on dir, 0 if none.
// A postmaster.pid naming a dead process, or one that is not postgres (a
// PID reused after a crash), is stale: it is removed so that the next
// postmaster does not refuse to start. Call it holding the owner lock.
func livePostmaster(dir string) (int, error) {
	pid, err := readPostmasterPID(dir)
	if err != nil || pid == 0 {
		return 0, err
	}
	if alive(pid) && isPostgres(pid) {
		return pid, nil
	}
	if err := os.Remove(filepath.Join(dir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("pgserver: remove stale postmaster.pid: %w", err)
	}
	return 0, nil
}

// readPostmasterPID returns the PID in dir/postmaster.pid, 0 if there is
// no such file.
func readPostmasterPID(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pgserver: read postmaster.pid: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, nil // being written, or garbage: treat as no postmaster
	}
	return pid, nil
}

// isPostgres reports whether pid is a live postgres (postmaster) process.
func isPostgres(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return false
	}
	arg0, _, _ := bytes.Cut(b, []byte{0})
	base := filepath.Base(string(arg0))
	if base == "postgres" || base == "postmaster" {
		return true
	}
	// A postmaster may retitle itself ("postgres: …" with
	// update_process_title); its comm is still postgres.
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(comm)) == "postgres"
}

// procState returns a process's state letter (R, S, D, Z, …) from
// /proc/<pid>/stat.
func procState(pid int) (byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// the state (field 3) follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("pgserver: malformed /proc/%d/stat", pid)
	}
	return b[i+2], nil
}

// alive reports whether pid exists and has not exited (a zombie, exited
// but not yet reaped, counts as gone).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, err := procState(pid)
	return err == nil && state != 'Z'
}
