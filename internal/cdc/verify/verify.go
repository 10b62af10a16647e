// Package verify is the end-to-end checker of the change stream: it writes
// a seeded workload to PostgreSQL, runs the relay as a subprocess that it
// kills with SIGKILL at random moments and restarts, injects broker faults
// (errors on produce and end-transaction, a broker restart), then reads
// every topic with read_committed and checks that each committed change
// appears exactly once, in commit order per key, and that nothing of
// rolled-back work appears.
package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/cdc/relay"
)

// ChildEnv carries the relay child's configuration (JSON of ChildConfig).
const ChildEnv = "BULWARK_CDC_VERIFY_CHILD"

// ChildConfig is what the relay subprocess runs.
type ChildConfig struct {
	PostgresURL string
	Brokers     []string
	Slot        string
	Publication string
	TopicPrefix string
	SpillDir    string
}

// Config configures a verification run.
type Config struct {
	// PostgresURL is an empty database the verifier may fill. Required.
	PostgresURL string
	// Seed makes the workload, kill times and faults reproducible.
	Seed uint64
	// Kills is the number of SIGKILLs of the relay. Default 5.
	Kills int
	// MinTxns is the least number of workload transactions. Default 300.
	MinTxns int
	// InitialRows are written before the relay starts (the snapshot).
	// Default 2,000.
	InitialRows int
	// Relay returns the command that runs the relay child with env added
	// to its environment; the child calls RunChild. Required.
	Relay func(env []string) *exec.Cmd
	// Dir holds the broker's data and the children's logs. Required.
	Dir string
	// Log receives progress. Default slog.Default().
	Log *slog.Logger
}

// Report summarises a run.
type Report struct {
	Seed      uint64   `json:"seed"`
	Kills     int      `json:"kills"`
	Faults    []string `json:"faults"`
	SelfExits int      `json:"relay_exits"`
	// SnapshotResumes counts relay starts that resumed an interrupted
	// snapshot under a new one.
	SnapshotResumes int      `json:"snapshot_resumes"`
	Txns            int      `json:"txns_committed"`
	Changes         int      `json:"changes_committed"`
	Events          int      `json:"events_read"`
	Violations      []string `json:"violations,omitempty"`
	DurationSec     float64  `json:"duration_sec"`
}

// ErrViolation is returned when the stream is not exactly-once.
var ErrViolation = errors.New("verify: change stream violations")

// Run performs one verification.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Kills == 0 {
		cfg.Kills = 5
	}
	if cfg.MinTxns == 0 {
		cfg.MinTxns = 300
	}
	if cfg.InitialRows == 0 {
		cfg.InitialRows = 2000
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	start := time.Now()
	rep := Report{Seed: cfg.Seed, Kills: cfg.Kills}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	conn, err := pgx.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		return rep, err
	}
	defer conn.Close(context.Background())
	m := newModel()
	if err := setup(ctx, conn, m, cfg.InitialRows); err != nil {
		return rep, err
	}
	port, err := freePort()
	if err != nil {
		return rep, err
	}
	bdir := cfg.Dir + "/broker"
	b, err := broker.StartEmbedded(ctx, bdir, kfake.Ports(port))
	if err != nil {
		return rep, err
	}
	defer func() { b.Close() }()
	child := &relayProc{cfg: cfg, env: childEnv(cfg, b.Addrs())}
	if err := child.start(); err != nil {
		return rep, err
	}
	defer child.stop()

	stopWriter := startWriter(ctx, cfg, m)
	if err := killRelay(ctx, cfg, rng, child, &b, bdir, port, &rep); err != nil {
		_ = stopWriter()
		return rep, err
	}
	if err := stopWriter(); err != nil {
		return rep, err
	}
	// The end marker must come from the stream: wait until the snapshot
	// (possibly resumed late by a restarted relay) is complete.
	if err := waitSnapshot(ctx, child.env, b.Addrs(), true); err != nil {
		return rep, err
	}
	if _, err := conn.Exec(ctx, `INSERT INTO v_end VALUES (1)`); err != nil {
		return rep, err
	}
	evs, err := readAll(ctx, b.Addrs(), 3*time.Minute)
	rep.SelfExits = child.selfExits()
	rep.SnapshotResumes = countInLogs(cfg.Dir, "snapshot resumed")
	if err != nil {
		return rep, err
	}
	rep.Events = len(evs)
	rep.Txns, rep.Changes = m.stats()
	rep.Violations = check(m, evs)
	rep.DurationSec = time.Since(start).Seconds()
	if len(rep.Violations) > 0 {
		return rep, fmt.Errorf("%w: %d (seed %d), first: %s", ErrViolation, len(rep.Violations), cfg.Seed, rep.Violations[0])
	}
	return rep, nil
}

// startWriter runs the workload on its own connection until the returned
// stop is called and at least cfg.MinTxns transactions were written; stop
// waits for it and returns its error.
func startWriter(ctx context.Context, cfg Config, m *model) (stop func() error) {
	var wg sync.WaitGroup
	stopc := make(chan struct{})
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		g := &gen{r: rand.New(rand.NewPCG(cfg.Seed, 1)), m: m}
		wconn, err := pgx.Connect(ctx, cfg.PostgresURL)
		if err != nil {
			writeErr = err
			return
		}
		defer wconn.Close(context.Background())
		for n := 0; ; n++ {
			select {
			case <-stopc:
				if n >= cfg.MinTxns {
					return
				}
			default:
			}
			if err := m.apply(ctx, wconn, g.plan()); err != nil {
				writeErr = fmt.Errorf("workload: %w", err)
				return
			}
			time.Sleep(time.Duration(g.r.IntN(3)) * time.Millisecond)
		}
	}()
	return func() error {
		close(stopc)
		wg.Wait()
		return writeErr
	}
}

// killRelay SIGKILLs and restarts the relay cfg.Kills times at random
// moments, injecting a broker fault before half of the kills.
func killRelay(ctx context.Context, cfg Config, rng *rand.Rand, child *relayProc, b **broker.Embedded, bdir string, port int, rep *Report) error {
	for i := range cfg.Kills {
		d := 300*time.Millisecond + time.Duration(rng.IntN(1500))*time.Millisecond
		if i == 0 && rng.IntN(3) > 0 {
			// Aim the first kill inside the snapshot: the exported snapshot
			// dies with the process and the next relay must resume.
			d = 0
			_ = waitSnapshot(ctx, child.env, (*b).Addrs(), false)
		}
		time.Sleep(d)
		if rng.IntN(2) == 0 {
			f, err := injectFault(ctx, rng, b, bdir, port)
			if err != nil {
				return err
			}
			rep.Faults = append(rep.Faults, f)
			time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		}
		cfg.Log.Info("verify: SIGKILL relay", "kill", i+1)
		if err := child.kill(); err != nil {
			return err
		}
		if err := child.start(); err != nil {
			return err
		}
	}
	return nil
}

func setup(ctx context.Context, conn *pgx.Conn, m *model, rows int) error {
	for _, s := range schemaSQL {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("verify schema: %w", err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO v_acct SELECT g, 1, 'initial' FROM generate_series(1, $1::int) g`, rows); err != nil {
		return err
	}
	for i := 1; i <= rows; i++ {
		m.record(op{key: fmt.Sprintf("v_acct/%d", i), step: step{"c", 1}})
	}
	// Text-keyed rows too, so that a snapshot resumed after a kill compares
	// text keys.
	if _, err := conn.Exec(ctx, `INSERT INTO v_tag SELECT 'k' || (g % 97), g, 1, 'initial' FROM generate_series($1::int + 1, $1::int * 3 / 2) g`, rows); err != nil {
		return err
	}
	for i := rows + 1; i <= rows*3/2; i++ {
		m.record(op{key: fmt.Sprintf("v_tag/k%d|%d", i%97, i), step: step{"c", 1}})
	}
	m.next = rows * 3 / 2
	_, err := conn.Exec(ctx, `CREATE PUBLICATION verify_pub FOR TABLE v_acct, v_tag, v_full, v_end`)
	return err
}

func childEnv(cfg Config, brokers []string) []string {
	b, _ := json.Marshal(ChildConfig{
		PostgresURL: withWorkMem(cfg.PostgresURL), Brokers: brokers, Slot: "verify", Publication: "verify_pub",
		TopicPrefix: "verify.", SpillDir: cfg.Dir + "/spill",
	})
	return []string{ChildEnv + "=" + string(b)}
}

// withWorkMem lowers logical_decoding_work_mem for the relay's walsender so
// that the workload's large transactions are streamed in progress.
func withWorkMem(u string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "options=-c%20logical_decoding_work_mem%3D64kB"
}

func injectFault(ctx context.Context, rng *rand.Rand, b **broker.Embedded, dir string, port int) (string, error) {
	c := (*b).Cluster()
	switch rng.IntN(6) {
	case 0:
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotLeaderForPartition, Count: 3})
		return "produce NOT_LEADER_FOR_PARTITION x3", nil
	case 1:
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.CoordinatorNotAvailable, Count: 2})
		return "end_txn COORDINATOR_NOT_AVAILABLE x2", nil
	case 2:
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.RequestTimedOut, Count: 1})
		return "produce REQUEST_TIMED_OUT (applied) x1", nil
	case 3:
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.AddPartitionsToTxn}, Err: kerr.ConcurrentTransactions, Count: 2})
		return "add_partitions CONCURRENT_TRANSACTIONS x2", nil
	case 4:
		// The relay must stop (ErrFenced) without committing; the verifier
		// restarts it like a supervisor would.
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.ProducerFenced, Count: 1})
		return "end_txn PRODUCER_FENCED x1", nil
	}
	(*b).Close()
	time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
	nb, err := broker.StartEmbedded(ctx, dir, kfake.Ports(port))
	if err != nil {
		return "", fmt.Errorf("restart broker: %w", err)
	}
	*b = nb
	return "broker restart", nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// relayProc runs the relay child and restarts it when it exits by itself.
type relayProc struct {
	cfg  Config
	env  []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	n    int
	self int
	quit bool
}

func (p *relayProc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	cmd := p.cfg.Relay(p.env)
	logf, err := os.Create(fmt.Sprintf("%s/relay-%d.log", p.cfg.Dir, p.n))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), p.env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start relay: %w", err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		logf.Close()
		close(done)
		p.mu.Lock()
		restart := p.cmd == cmd && !p.quit
		if restart {
			p.self++
		}
		p.mu.Unlock()
		if restart {
			p.cfg.Log.Warn("verify: relay exited by itself; restarting", "err", err, "log", logf.Name())
			time.Sleep(200 * time.Millisecond)
			_ = p.start()
		}
	}()
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *relayProc) kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-done
	return nil
}

// stop ends the child with SIGTERM (an ordered shutdown) and waits.
func (p *relayProc) stop() {
	p.mu.Lock()
	p.quit = true
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (p *relayProc) selfExits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.self
}

// RunChild runs the relay configured by ChildEnv until ctx is done. It is
// the body of the subprocess that Run kills.
func RunChild(ctx context.Context, logOut io.Writer) error {
	var cc ChildConfig
	if err := json.Unmarshal([]byte(os.Getenv(ChildEnv)), &cc); err != nil {
		return fmt.Errorf("verify child: %s: %w", ChildEnv, err)
	}
	r, err := relay.New(relay.Config{
		PostgresURL: cc.PostgresURL, Brokers: cc.Brokers, Slot: cc.Slot, Publication: cc.Publication,
		TopicPrefix: cc.TopicPrefix, SpillDir: cc.SpillDir, HeartbeatInterval: 500 * time.Millisecond,
		SnapshotChunkRows: 100, MaxTxnBytes: 32 << 10, FlushInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

// waitSnapshot waits until the relay's checkpoint shows its snapshot
// started (done false) or complete (done true).
func waitSnapshot(ctx context.Context, env []string, brokers []string, done bool) error {
	var cc ChildConfig
	if err := json.Unmarshal([]byte(strings.TrimPrefix(env[0], ChildEnv+"=")), &cc); err != nil {
		return err
	}
	cfg := relay.Config{PostgresURL: cc.PostgresURL, Brokers: brokers, Slot: cc.Slot, Publication: cc.Publication, TopicPrefix: cc.TopicPrefix}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := relay.ReadStatus(ctx, cfg)
		if err == nil && st.Checkpoint != nil && st.Checkpoint.Snapshot != nil && (st.Checkpoint.Snapshot.Done || !done) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("verify: the relay did not finish its snapshot within 3 minutes")
}

func countInLogs(dir, needle string) int {
	logs, _ := filepath.Glob(filepath.Join(dir, "relay-*.log"))
	n := 0
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		n += strings.Count(string(b), needle)
	}
	return n
}
