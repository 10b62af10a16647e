package pgserver_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/pgserver"
)

// These tests run real PostgreSQL servers and real processes: a helper
// (this test binary re-executed, see TestMain) starts the cluster as
// `bulwark serve` does, and the tests SIGKILL it.

const helperDirEnv = "BULWARK_PGSERVER_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		os.Exit(helperMain(dir))
	}
	os.Exit(m.Run())
}

// helperMain starts (or joins) the cluster in dir, prints "ready", and
// waits to be killed.
func helperMain(dir string) int {
	c, err := pgserver.Start(context.Background(), pgserver.Config{Dir: dir, Fast: true})
	if err != nil {
		fmt.Println("error:", strings.ReplaceAll(err.Error(), "\n", " | "))
		return 1
	}
	fmt.Println("ready", c.Owned())
	select {}
}

// startHelper runs a helper process on dir and waits until its cluster is
// up, owned by it. The returned process must be killed by the test.
func startHelper(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd, ready := spawnHelper(t, dir)
	if line := <-ready; line != "ready true" {
		t.Fatalf("helper on %s: %q", dir, line)
	}
	return cmd
}

// spawnHelper starts a helper process on dir; ready receives its first
// line of output ("ready OWNED" or an error).
func spawnHelper(t *testing.T, dir string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			line = "read: " + err.Error()
		}
		ready <- strings.TrimSpace(line)
	}()
	return cmd, ready
}

// newDataDir initialises a cluster in a fresh directory and stops it.
func newDataDir(t *testing.T) string {
	t.Helper()
	parent, err := pgserver.TempDir("bulwark-pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	dir := filepath.Join(parent, "data")
	c, err := pgserver.Start(context.Background(), pgserver.Config{Dir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Owned() {
		t.Fatal("a cluster this process initialised is not owned by it")
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// postmasterPID reads dir/postmaster.pid; 0 when there is none.
func postmasterPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("postmaster.pid: %q", b)
	}
	return pid
}

// running reports whether pid is a live process (not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z")
}

func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// waitGone waits up to limit for pid to exit.
func waitGone(t *testing.T, pid int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for running(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("postmaster %d still running %s later", pid, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postmasterExitLimit bounds how long a postmaster may outlive its owner:
// a fast shutdown of a small test cluster takes well under a second.
const postmasterExitLimit = 15 * time.Second

// TestPostmasterDiesWithItsOwner SIGKILLs the process that started the
// cluster, several times, restarting at once each time (while the old
// postmaster may still be shutting down): each restart must work, and
// each killed owner's postmaster must exit on its own.
func TestPostmasterDiesWithItsOwner(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	const kills = 3
	for i := range kills {
		h := startHelper(t, dir)
		pid := postmasterPID(t, dir)
		if pid == 0 || parentOf(t, pid) != h.Process.Pid {
			t.Fatalf("kill %d: postmaster %d is not the helper's (%d) child", i, pid, h.Process.Pid)
		}
		if err := h.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = h.Wait()
		if i == kills-1 {
			waitGone(t, pid, postmasterExitLimit)
		}
	}
	// And this process can start it again and stop it cleanly.
	c, err := pgserver.Start(context.Background(), pgserver.Config{Dir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	pid := postmasterPID(t, dir)
	if !c.Owned() || parentOf(t, pid) != os.Getpid() {
		t.Fatalf("restart: owned=%v, postmaster %d parent %d", c.Owned(), pid, parentOf(t, pid))
	}
	ping(t, c)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if running(pid) || postmasterPID(t, dir) != 0 {
		t.Fatalf("postmaster %d still running (or postmaster.pid left) after Stop", pid)
	}
}

// TestConcurrentStartersTakeTurns: two processes starting on the same
// stopped data directory at once: one owns the server, the other uses it
// as a guest; neither fails, and the server is the owner's child.
func TestConcurrentStartersTakeTurns(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	a, readyA := spawnHelper(t, dir)
	b, readyB := spawnHelper(t, dir)
	la, lb := <-readyA, <-readyB
	if !(la == "ready true" && lb == "ready false") && !(la == "ready false" && lb == "ready true") {
		t.Fatalf("concurrent starters said %q and %q, want one owner and one guest", la, lb)
	}
	owner := a
	if lb == "ready true" {
		owner = b
	}
	pid := postmasterPID(t, dir)
	if parentOf(t, pid) != owner.Process.Pid {
		t.Fatalf("postmaster %d is not the owner's (%d) child", pid, owner.Process.Pid)
	}
	_ = a.Process.Signal(syscall.SIGKILL)
	_ = b.Process.Signal(syscall.SIGKILL)
	waitGone(t, pid, postmasterExitLimit)
}

// TestGuestLeavesTheOwnersServer: a second process on the same data
// directory (a maintenance command while serve runs) uses the server
// without owning it, so its Stop leaves it running, StopDir (make clean)
// refuses, and the owner's death still stops it.
func TestGuestLeavesTheOwnersServer(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	h := startHelper(t, dir)
	pid := postmasterPID(t, dir)
	c, err := pgserver.Start(context.Background(), pgserver.Config{Dir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Owned() {
		t.Fatal("a guest claims to own the owner's server")
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	ping(t, c)
	if err := pgserver.StopDir(context.Background(), pgserver.Config{Dir: dir}); !errors.Is(err, pgserver.ErrInUse) {
		t.Fatalf("StopDir with a live owner: %v, want ErrInUse", err)
	}
	if !running(pid) {
		t.Fatal("StopDir stopped a server its live owner runs")
	}
	_ = h.Process.Signal(syscall.SIGKILL)
	_ = h.Wait()
	waitGone(t, pid, postmasterExitLimit)
}

// TestOrphanFromOlderBuild: older builds daemonised the server with pg_ctl,
// so it outlived a killed bulwark and a later clean stop left it running.
// Start now stops such an orphan and starts its own child, which its Stop
// stops; StopDir (make clean) stops an orphan too.
func TestOrphanFromOlderBuild(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	pgCtlStart(t, dir)
	orphan := postmasterPID(t, dir)
	if orphan == 0 || !running(orphan) {
		t.Fatal("pg_ctl did not start a server")
	}
	c, err := pgserver.Start(context.Background(), pgserver.Config{Dir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	pid := postmasterPID(t, dir)
	if !c.Owned() || pid == orphan || running(orphan) || parentOf(t, pid) != os.Getpid() {
		t.Fatalf("orphan %d (running %v) not replaced by an owned child: owned=%v pid=%d", orphan, running(orphan), c.Owned(), pid)
	}
	ping(t, c)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if running(pid) {
		t.Fatal("Stop left the server running")
	}

	pgCtlStart(t, dir)
	orphan = postmasterPID(t, dir)
	if err := pgserver.StopDir(context.Background(), pgserver.Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if running(orphan) || postmasterPID(t, dir) != 0 {
		t.Fatalf("StopDir left orphan %d running", orphan)
	}
	if err := pgserver.StopDir(context.Background(), pgserver.Config{Dir: dir}); err != nil {
		t.Fatalf("StopDir with nothing running: %v", err)
	}
}

// TestUnreachableDataDirIsRefused: as root the server runs as postgres;
// a data directory under a parent it cannot search is refused with
// instructions, and the parent's permissions are left alone (older builds
// silently added o+x and g+x to every parent).
func TestUnreachableDataDirIsRefused(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: only then does the server run as another user, who may not reach the data directory")
	}
	parent := t.TempDir() // 0700, owned by root
	before, err := os.Stat(parent)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pgserver.Start(context.Background(), pgserver.Config{Dir: filepath.Join(parent, "pg"), Fast: true})
	if err == nil || !strings.Contains(err.Error(), "cannot reach") || !strings.Contains(err.Error(), "chmod o+x") {
		t.Fatalf("Start under a 0700 root directory: %v, want a refusal with instructions", err)
	}
	after, err := os.Stat(parent)
	if err != nil {
		t.Fatal(err)
	}
	if after.Mode() != before.Mode() {
		t.Fatalf("Start changed %s from %v to %v", parent, before.Mode(), after.Mode())
	}
}

// pgCtlStart starts the cluster the way older builds did: daemonised by
// pg_ctl, as the postgres user when root, with no owner recorded.
func pgCtlStart(t *testing.T, dir string) {
	t.Helper()
	bin, err := pgserver.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "start", "-D", dir, "-l", filepath.Join(dir, "server.log"), "-w")
	cmd.Dir = "/"
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v: %s", err, out)
	}
	// The old build's bulwark is gone: nothing stops this server for us.
	t.Cleanup(func() {
		_ = pgserver.StopDir(context.Background(), pgserver.Config{Dir: dir})
	})
}

func ping(t *testing.T, c *pgserver.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1: %v", err)
	}
	conn.Close(ctx)
}
