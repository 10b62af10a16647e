package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// The postmaster runs as a direct child of the process that starts it (not
// daemonised through pg_ctl), with a parent-death signal: when that process
// dies, even by SIGKILL, the kernel sends the postmaster SIGINT, PostgreSQL's
// fast shutdown (sessions end, open transactions roll back, a shutdown
// checkpoint is written). Nothing acknowledged is lost: commits are durable
// before they are acknowledged. Had the shutdown itself been cut short, the
// next start would run normal crash recovery.
//
// Two details make the parent-death signal reliable from Go:
//   - The kernel sends it when the thread that forked the child exits, not
//     the process (go.dev/issue/27505), and the Go runtime may end idle
//     threads. So the child is started from a goroutine locked to its
//     thread for the child's whole life: it blocks in Wait, and its thread
//     ends only after the postmaster has exited.
//   - The kernel clears the setting when the child changes credentials.
//     Go's forkExec (syscall/exec_linux.go) calls setgroups/setgid/setuid
//     for SysProcAttr.Credential before prctl(PR_SET_PDEATHSIG), so running
//     the postmaster as the postgres user keeps it; and postgres is not a
//     set-user-ID binary, whose exec would clear it too.
const parentDeathSignal = syscall.SIGINT

// Shutdown bounds: a fast shutdown writes a checkpoint of at most
// shared_buffers (256 MB) of dirty pages, seconds on any disk; past
// fastStopTimeout the postmaster gets SIGQUIT (immediate shutdown: crash
// recovery at the next start), and past quitStopTimeout SIGKILL.
const (
	fastStopTimeout = 60 * time.Second
	quitStopTimeout = 10 * time.Second
)

// postmaster is a postgres server running as this process's child.
type postmaster struct {
	pid  int
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // Wait's result; read after done
}

// startPostmaster starts `postgres -D dir` as a child, logging to
// dir/server.log. The goroutine it starts is owned by the returned
// postmaster: it ends when the process exits (see stop).
func (c *Cluster) startPostmaster() (*postmaster, error) {
	logPath := filepath.Join(c.cfg.Dir, "server.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgserver: open server log: %w", err)
	}
	// Everything in the data directory belongs to the server's user, as
	// initdb and pg_ctl leave it.
	if c.cred != nil {
		if err := logf.Chown(int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			logf.Close()
			return nil, fmt.Errorf("pgserver: chown server log: %w", err)
		}
	}
	pm := &postmaster{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread must outlive the child (see above).
		runtime.LockOSThread()
		defer close(pm.done)
		defer logf.Close()
		cmd := exec.Command(filepath.Join(c.cfg.BinDir, "postgres"), "-D", c.cfg.Dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{
			// Own process group: a Ctrl-C aimed at bulwark must not stop the
			// server before bulwark has drained and stopped it in order.
			Setpgid:    true,
			Credential: c.cred,
			Pdeathsig:  parentDeathSignal,
		}
		cmd.Dir = "/"
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			pm.err = err
			started <- fmt.Errorf("pgserver: start postgres: %w", err)
			return
		}
		pm.pid = cmd.Process.Pid
		started <- nil
		pm.err = cmd.Wait()
	}()
	if err := <-started; err != nil {
		<-pm.done
		return nil, err
	}
	return pm, nil
}

// stop shuts the child down: fast, then immediate, then SIGKILL, each
// after its timeout; it returns once the process has exited.
func (pm *postmaster) stop() error {
	steps := []struct {
		sig     syscall.Signal
		timeout time.Duration
	}{{syscall.SIGINT, fastStopTimeout}, {syscall.SIGQUIT, quitStopTimeout}, {syscall.SIGKILL, quitStopTimeout}}
	for _, s := range steps {
		// The child is not reaped before done closes, so its PID is not
		// reused while we signal it.
		select {
		case <-pm.done:
			return nil
		default:
		}
		if err := syscall.Kill(pm.pid, s.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pgserver: signal postmaster %d: %w", pm.pid, err)
		}
		select {
		case <-pm.done:
			return nil
		case <-time.After(s.timeout):
		}
	}
	return fmt.Errorf("pgserver: postmaster %d did not exit after SIGKILL", pm.pid)
}

// exited reports whether the child has exited, and how.
func (pm *postmaster) exited() (bool, error) {
	select {
	case <-pm.done:
		return true, pm.err
	default:
		return false, nil
	}
}

// waitReady waits until the server accepts connections, the child exits,
// or the start timeout passes.
func (c *Cluster) waitReady(ctx context.Context, pm *postmaster) error {
	deadline := time.Now().Add(c.cfg.StartTimeout)
	for {
		err := c.ping(ctx)
		if err == nil {
			return nil
		}
		if done, werr := pm.exited(); done {
			return fmt.Errorf("pgserver: postgres exited during start (%w)\nserver log:\n%s", werr, c.logTail())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("pgserver: server did not accept connections within %s: %w\nserver log:\n%s",
				c.cfg.StartTimeout, err, c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) logTail() string {
	const maxTail = 2000
	b, _ := os.ReadFile(filepath.Join(c.cfg.Dir, "server.log"))
	if len(b) > maxTail {
		b = b[len(b)-maxTail:]
	}
	return string(b)
}
