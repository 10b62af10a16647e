package pgserver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Who runs a data directory, found from files and /proc (Linux only, like
// the rest of this package: Pdeathsig and the credentials are Linux's).
//
//   - postmaster.pid (PostgreSQL's lock file): its first line is the
//     postmaster's PID.
//   - ownerFile (ours): the PID and start time of the process that started
//     the postmaster as its child. The start time guards against a reused
//     PID; the postmaster's parent PID must also be that process, so a file
//     left by a dead owner never vouches for a postmaster someone else
//     started.

// ownerFile, inside the data directory (PostgreSQL ignores unknown files
// there), names the bulwark process that runs the postmaster.
const ownerFile = "bulwark.owner"

// runState is what runs on a data directory.
type runState struct {
	// pid of a live postmaster, 0 if none.
	pid int
	// owner is the live process that started it as its child, 0 if none:
	// the postmaster is then an orphan (its owner died, or an older build
	// started it through pg_ctl).
	owner int
}

// inspect reads who runs dir. A postmaster.pid whose PID is dead, or is
// a process other than postgres (a PID reused after a crash), is stale:
// it is removed so that the next postmaster does not refuse to start.
func inspect(dir string) (runState, error) {
	pid, err := readPostmasterPID(dir)
	if err != nil || pid == 0 {
		return runState{}, err
	}
	if !isPostgres(pid) {
		if err := os.Remove(filepath.Join(dir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return runState{}, fmt.Errorf("pgserver: remove stale postmaster.pid: %w", err)
		}
		return runState{}, nil
	}
	st := runState{pid: pid}
	ownerPID, ownerStart, ok := readOwner(dir)
	if !ok {
		return st, nil
	}
	ppid, _, err := procStat(pid)
	if err != nil || ppid != ownerPID {
		return st, nil
	}
	if _, start, err := procStat(ownerPID); err == nil && start == ownerStart {
		st.owner = ownerPID
	}
	return st, nil
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

// procStat returns a live process's parent PID and start time (clock
// ticks since boot), from /proc/<pid>/stat.
func procStat(pid int) (ppid int, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// fields after the last ')' start at field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("pgserver: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	const ppidField, startField = 4 - 3, 22 - 3
	if len(f) <= startField {
		return 0, 0, fmt.Errorf("pgserver: short /proc/%d/stat", pid)
	}
	if f[0] == "Z" {
		return 0, 0, fmt.Errorf("pgserver: process %d is a zombie", pid)
	}
	ppid, err = strconv.Atoi(f[ppidField])
	if err != nil {
		return 0, 0, fmt.Errorf("pgserver: /proc/%d/stat ppid: %w", pid, err)
	}
	start, err = strconv.ParseUint(f[startField], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("pgserver: /proc/%d/stat start time: %w", pid, err)
	}
	return ppid, start, nil
}

// writeOwner records this process as the owner of dir's postmaster; the
// file belongs to cred's user when set, like the rest of the directory.
func writeOwner(dir string, cred *syscall.Credential) error {
	pid := os.Getpid()
	_, start, err := procStat(pid)
	if err != nil {
		return err
	}
	content := fmt.Sprintf("%d %d\n", pid, start)
	path := filepath.Join(dir, ownerFile)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("pgserver: write %s: %w", ownerFile, err)
	}
	if cred != nil {
		if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("pgserver: chown %s: %w", ownerFile, err)
		}
	}
	return nil
}

func readOwner(dir string) (pid int, start uint64, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	return pid, start, err1 == nil && err2 == nil
}

// alive reports whether pid exists (a zombie counts as gone).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	_, _, err := procStat(pid)
	return err == nil
}
