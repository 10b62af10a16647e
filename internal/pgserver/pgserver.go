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

// Cluster is a running (or adopted) private cluster.
type Cluster struct {
	cfg  Config
	port int
	cred *syscall.Credential
	// owned is true when this process started the server, so Stop stops it.
	owned bool
}

// SuperUser is the bootstrap role of private clusters.
const SuperUser = "bulwark"

// Start initialises the cluster if Dir holds none, then starts it, or adopts a
// server already running on it.
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
	}
	if c.port, err = readPort(filepath.Join(dir, "postgresql.conf")); err != nil {
		return nil, err
	}
	if c.ping(ctx) == nil {
		return c, nil // adopted: left running by an earlier process
	}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	c.owned = true
	return c, nil
}

// Port is the TCP port the server listens on (127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// Dir is the data directory.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// URL returns a connection string for database db as the superuser.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", SuperUser, c.port, db)
}

// Stop shuts the server down (fast mode: open transactions roll back, which
// is safe because nothing acknowledged is ever left in one).
func (c *Cluster) Stop() error {
	return c.run(context.Background(), "pg_ctl", "stop", "-D", c.cfg.Dir, "-m", "fast", "-w", "-t", "60")
}

// StopIfOwned stops the server only if this process started it.
func (c *Cluster) StopIfOwned() error {
	if !c.owned {
		return nil
	}
	return c.Stop()
}

func (c *Cluster) initdb(ctx context.Context) error {
	if err := os.MkdirAll(c.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("pgserver: create data dir: %w", err)
	}
	if c.cred != nil {
		if err := os.Chown(c.cfg.Dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("pgserver: chown data dir: %w", err)
		}
		// The server must reach its data dir through every parent.
		for p := filepath.Dir(c.cfg.Dir); p != "/"; p = filepath.Dir(p) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
				_ = os.Chmod(p, fi.Mode().Perm()|0o011)
			}
		}
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

func (c *Cluster) start(ctx context.Context) error {
	logFile := filepath.Join(c.cfg.Dir, "server.log")
	secs := strconv.Itoa(int(c.cfg.StartTimeout / time.Second))
	if err := c.run(ctx, "pg_ctl", "start", "-D", c.cfg.Dir, "-l", logFile, "-w", "-t", secs); err != nil {
		tail, _ := os.ReadFile(logFile)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("%w\nserver log:\n%s", err, tail)
	}
	deadline := time.Now().Add(c.cfg.StartTimeout)
	for {
		err := c.ping(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgserver: server did not accept connections: %w", err)
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
