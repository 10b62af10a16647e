package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config describes a private cluster.
type Config struct {
	// Dir is the cluster's data directory. Required.
	Dir string
	// BinDir holds initdb, pg_ctl and postgres. Empty means search
	// $BULWARK_PG_BINDIR, then /usr/lib/postgresql/<newest>/bin, then $PATH.
	BinDir string
	// RunAs is the system user that owns and runs the cluster when the
	// current process is root. Empty means "postgres".
	RunAs string
	// Fast disables fsync and full-page writes: for throwaway test clusters
	// only, never for data anyone keeps.
	Fast bool
	// Settings are extra postgresql.conf lines (name -> value) written at
	// initialisation.
	Settings map[string]string
	// StartTimeout bounds the start; zero means 60 s.
	StartTimeout time.Duration
	// NoInit makes Start fail with ErrNotInitialised when Dir holds no
	// cluster, instead of creating one: for commands that must work on
	// existing data only.
	NoInit bool
}

// ErrNotInitialised is returned by Start with Config.NoInit when the data
// directory holds no cluster.
var ErrNotInitialised = errors.New("pgserver: no initialised cluster")

// Cluster is a private cluster this process started (it owns it: Stop
// stops it) or found run by another live process (a guest: Stop leaves it).
type Cluster struct {
	cfg  Config
	port int
	cred *syscall.Credential
	// pm is the postmaster this process started as its child, and lock
	// the owner lock held while it runs; both nil for a guest.
	pm   *postmaster
	lock *ownerLock
}

// SuperUser is the bootstrap role of private clusters.
const SuperUser = "bulwark"

// ErrInUse is returned by StopDir when a live process runs the cluster.
var ErrInUse = errors.New("pgserver: cluster in use")

// Start initialises the cluster if Dir holds none (unless NoInit), then
// makes sure a server runs on it:
//   - none runs: it starts one as its child (see postmaster.go), owned;
//   - another live process owns it, i.e. holds the owner lock (say
//     `bulwark serve` while `bulwark ledger verify` starts): it is used as
//     a guest;
//   - an orphan runs (its owner died and it is still shutting down, or an
//     older build daemonised it with pg_ctl): it is stopped (fast shutdown)
//     and a new one started, owned, so that it cannot outlive this process.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("pgserver: Config.Dir is required")
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.RunAs == "" {
		cfg.RunAs = "postgres"
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgserver: data dir: %w", err)
	}
	cfg.Dir = dir
	if cfg.BinDir == "" {
		if cfg.BinDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	c := &Cluster{cfg: cfg}
	if os.Geteuid() == 0 {
		if c.cred, err = credential(cfg.RunAs); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if cfg.NoInit {
			return nil, fmt.Errorf("%w in %s", ErrNotInitialised, dir)
		}
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	} else if err := c.checkReachable(); err != nil {
		return nil, err
	}
	if c.port, err = readPort(filepath.Join(dir, "postgresql.conf")); err != nil {
		return nil, err
	}
	lock, owner, err := lockOwner(dir, c.cred)
	if err != nil {
		return nil, err
	}
	if lock == nil {
		// A guest: the owner may still be starting it.
		if err := c.waitPing(ctx); err != nil {
			return nil, fmt.Errorf("pgserver: cluster run by process %d: %w", owner, err)
		}
		return c, nil
	}
	if err := c.startOwned(ctx, lock); err != nil {
		return nil, errors.Join(err, lock.release())
	}
	return c, nil
}

// startOwned, holding the owner lock, stops an orphaned postmaster if one
// runs, then starts the server as this process's child.
func (c *Cluster) startOwned(ctx context.Context, lock *ownerLock) error {
	orphan, err := livePostmaster(c.cfg.Dir)
	if err != nil {
		return err
	}
	if orphan != 0 {
		if err := c.stopOrphan(ctx, orphan); err != nil {
			return err
		}
	}
	if err := lock.record(); err != nil {
		return err
	}
	pm, err := c.startPostmaster()
	if err != nil {
		return err
	}
	if err := c.waitReady(ctx, pm); err != nil {
		return errors.Join(err, pm.stop())
	}
	c.pm, c.lock = pm, lock
	return nil
}

// Owned reports whether this process started the server (Stop stops it)
// rather than using one another live process runs.
func (c *Cluster) Owned() bool { return c.pm != nil }

// Port is the TCP port the server listens on (127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// Dir is the data directory.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// URL returns a connection string for database db as the superuser.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", SuperUser, c.port, db)
}

// Stop shuts the server down if this process owns it (fast mode: open
// transactions roll back, which is safe because nothing acknowledged is
// ever left in one) and returns once it has exited. A guest's Stop does
// nothing: the owner stops it.
func (c *Cluster) Stop() error {
	if c.pm == nil {
		return nil
	}
	if err := c.pm.stop(); err != nil {
		return err // keep the lock: the server may still run
	}
	c.pm = nil
	return c.lock.release()
}

// StopIfOwned is Stop (kept for callers written when adopted servers were
// left running).
func (c *Cluster) StopIfOwned() error { return c.Stop() }

// stopOrphan stops a postmaster no live process owns: fast shutdown, then
// immediate, then SIGKILL, each after its timeout (as for our own child),
// polling until the process is gone; it is not our child, so it cannot be
// waited for. (pg_ctl stop is not used: it fails when the postmaster has
// already removed postmaster.pid but not exited yet.)
func (c *Cluster) stopOrphan(ctx context.Context, pid int) error {
	const poll = 20 * time.Millisecond
	steps := []struct {
		sig     syscall.Signal
		timeout time.Duration
	}{{syscall.SIGINT, fastStopTimeout}, {syscall.SIGQUIT, quitStopTimeout}, {syscall.SIGKILL, quitStopTimeout}}
	gone := func() bool { return !alive(pid) }
	for _, s := range steps {
		if gone() {
			return nil
		}
		if err := syscall.Kill(pid, s.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pgserver: signal orphaned postmaster %d: %w", pid, err)
		}
		for deadline := time.Now().Add(s.timeout); time.Now().Before(deadline); {
			if gone() {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("pgserver: stop orphaned postmaster %d: %w", pid, ctx.Err())
			case <-time.After(poll):
			}
		}
	}
	return fmt.Errorf("pgserver: orphaned postmaster %d did not exit after SIGKILL", pid)
}

// StopDir stops the server running on an initialised data directory if no
// live process owns it (an orphan), does nothing if none runs, and fails
// with ErrInUse if a live process owns it: stop that process instead.
// `make clean` runs it (through `bulwark pg stop`) before deleting the
// directory.
func StopDir(ctx context.Context, cfg Config) error {
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return fmt.Errorf("pgserver: data dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		return nil // no cluster, so no server
	}
	cfg.Dir = dir
	if cfg.BinDir == "" {
		if cfg.BinDir, err = FindBinDir(); err != nil {
			return err
		}
	}
	if cfg.RunAs == "" {
		cfg.RunAs = "postgres"
	}
	c := &Cluster{cfg: cfg}
	if os.Geteuid() == 0 {
		if c.cred, err = credential(cfg.RunAs); err != nil {
			return err
		}
	}
	lock, owner, err := lockOwner(dir, c.cred)
	if err != nil {
		return err
	}
	if lock == nil {
		return fmt.Errorf("%w: process %d runs the PostgreSQL server under %s; stop it first", ErrInUse, owner, dir)
	}
	defer func() { _ = lock.release() }() // only probing: nothing depends on the close
	pid, err := livePostmaster(dir)
	if err != nil || pid == 0 {
		return err
	}
	return c.stopOrphan(ctx, pid)
}

// TempDir creates a new temporary directory to hold a cluster, for tests
// and benchmarks. os.MkdirTemp makes it 0700, which the postgres user could
// not traverse when this process is root; this directory is 0711 (others
// may enter it, not list it), so that its cluster's data directory is
// reachable without touching any other directory's permissions.
func TempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("pgserver: temp dir: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("pgserver: temp dir: %w", err)
	}
	return dir, nil
}

func (c *Cluster) initdb(ctx context.Context) error {
	// Parents this call creates are 0711, so that the postgres user can
	// traverse them (and not list them); existing ones are never changed:
	// checkReachable explains what to do when they block it.
	if err := os.MkdirAll(filepath.Dir(c.cfg.Dir), 0o711); err != nil {
		return fmt.Errorf("pgserver: create data dir parent: %w", err)
	}
	if err := os.Mkdir(c.cfg.Dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("pgserver: create data dir: %w", err)
	}
	if c.cred != nil {
		if err := os.Chown(c.cfg.Dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("pgserver: chown data dir: %w", err)
		}
	}
	if err := c.checkReachable(); err != nil {
		return err
	}
	if err := c.run(ctx, "initdb", "-D", c.cfg.Dir, "-U", SuperUser, "--auth=trust",
		"--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	return c.writeConf(port)
}

func (c *Cluster) writeConf(port int) error {
	set := map[string]string{
		"port":                      strconv.Itoa(port),
		"listen_addresses":          "'127.0.0.1'",
		"unix_socket_directories":   "''",
		"wal_level":                 "logical",
		"max_wal_senders":           "16",
		"max_replication_slots":     "16",
		"max_connections":           "300",
		"shared_buffers":            "256MB",
		"max_slot_wal_keep_size":    "'4GB'",
		"logging_collector":         "off",
		"log_min_messages":          "warning",
		"max_locks_per_transaction": "256",
		// Write-heavy defaults: checkpoints by time rather than by WAL
		// volume (each one makes the next write of every page a full-page
		// image), and those images compressed.
		"max_wal_size":       "'4GB'",
		"checkpoint_timeout": "'15min'",
		"wal_compression":    walCompression(c.cfg.Dir),
	}
	if c.cfg.Fast {
		set["fsync"] = "off"
		set["full_page_writes"] = "off"
		set["synchronous_commit"] = "off"
		set["shared_buffers"] = "64MB"
	}
	for k, v := range c.cfg.Settings {
		set[k] = v
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("\n# written by bulwark pgserver\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, set[k])
	}
	f, err := os.OpenFile(filepath.Join(c.cfg.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgserver: open postgresql.conf: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		return fmt.Errorf("pgserver: write postgresql.conf: %w", err)
	}
	// Replication connections need their own pg_hba line.
	hba, err := os.OpenFile(filepath.Join(c.cfg.Dir, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgserver: open pg_hba.conf: %w", err)
	}
	defer hba.Close()
	_, err = hba.WriteString("host replication all 127.0.0.1/32 trust\n")
	return err
}

// checkReachable fails with instructions when the user the server runs as
// cannot reach the data directory (as root, every parent directory must be
// searchable by it). It asks the kernel, by entering the directory as that
// user, so ACLs and groups count; it never changes a permission itself.
func (c *Cluster) checkReachable() error {
	if c.cred == nil {
		return nil // the server runs as this process's user
	}
	cmd := exec.Command("/bin/sh", "-c", `cd -- "$1"`, "sh", c.cfg.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		blocker := c.blockingParent()
		return fmt.Errorf("pgserver: the PostgreSQL server runs as user %q (initdb refuses root), which cannot reach "+
			"the data directory %s (%s: %w): %s; choose a data directory it can reach (e.g. --data-dir /var/lib/bulwark, "+
			"or DATA_DIR=/var/lib/bulwark for make), or allow it through: chmod o+x %s",
			c.cfg.RunAs, c.cfg.Dir, strings.TrimSpace(string(out)), err, blocker.why, blocker.path)
	}
	return nil
}

type blocker struct{ path, why string }

// blockingParent names the first directory on the way to the data
// directory whose mode bits deny search to the server's user (best effort:
// ACLs are not read).
func (c *Cluster) blockingParent() blocker {
	var chain []string
	for p := c.cfg.Dir; ; p = filepath.Dir(p) {
		chain = append([]string{p}, chain...)
		if p == "/" || p == "." {
			break
		}
	}
	for _, p := range chain {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		perm := fi.Mode().Perm()
		var bit os.FileMode = 0o001
		if st.Uid == c.cred.Uid {
			bit = 0o100
		} else if st.Gid == c.cred.Gid {
			bit = 0o010
		}
		if perm&bit == 0 {
			return blocker{p, fmt.Sprintf("%s is mode %#o owned by uid %d", p, perm, st.Uid)}
		}
	}
	return blocker{filepath.Dir(c.cfg.Dir), "a parent directory denies it"}
}

// waitPing waits until the server accepts connections or the start
// timeout passes: a server another process runs may still be starting.
func (c *Cluster) waitPing(ctx context.Context) error {
	deadline := time.Now().Add(c.cfg.StartTimeout)
	for {
		err := c.ping(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("server did not accept connections within %s: %w", c.cfg.StartTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.cfg.BinDir, name), args...)
	// Own process group: a Ctrl-C aimed at bulwark must not kill the server
	// before bulwark has drained and stopped it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgserver: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// FindBinDir locates the PostgreSQL server binaries.
func FindBinDir() (string, error) {
	if d := os.Getenv("BULWARK_PG_BINDIR"); d != "" {
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("pgserver: PostgreSQL server binaries not found (install postgresql, or set BULWARK_PG_BINDIR, or pass --postgres URL)")
}

// walCompression is lz4 on PostgreSQL 15 and later (the first with it),
// else on (pglz), read from the cluster's PG_VERSION.
func walCompression(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if v, _ := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v >= 15 {
		return "lz4"
	}
	return "on"
}

func versionOf(p string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
	return v
}

func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pgserver: running as root needs the unprivileged user %q (create it or install postgresql): %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

var portLine = regexp.MustCompile(`(?m)^port = (\d+)`)

func readPort(conf string) (int, error) {
	b, err := os.ReadFile(conf)
	if err != nil {
		return 0, fmt.Errorf("pgserver: read config: %w", err)
	}
	m := portLine.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		return 0, fmt.Errorf("pgserver: no port in %s", conf)
	}
	return strconv.Atoi(string(m[len(m)-1][1]))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgserver: pick port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
