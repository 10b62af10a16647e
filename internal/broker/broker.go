// Package broker provides the Kafka endpoint of the change stream: either an
// external cluster (--kafka host:port,... or BULWARK_KAFKA_BROKERS) or the
// embedded default, franz-go's in-process kfake broker persisted under the
// data directory with a synchronous write per batch.
//
// The embedded broker is a single, unreplicated node: it is meant for
// development and small installations. Its durability is that of one disk
// (every produced batch is fsynced before it is acknowledged); losing the
// disk loses the stream. Use a real Kafka or Redpanda cluster for anything
// that needs replication.
//
// kfake does not persist its transaction coordinator, so a crash of the
// process running it leaves transactions without markers; StartEmbedded
// repairs them before publishing its address (recover.go). ReadRange reads
// a partition range by fetch position, for readers that must know they
// reached an offset (the relay's checkpoint, the repair).
package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvBrokers names the environment variable holding seed brokers.
const EnvBrokers = "BULWARK_KAFKA_BROKERS"

// ErrInUse is returned by StartEmbedded when another process runs the
// embedded broker of the same directory; RunningAddrs then finds it.
var ErrInUse = errors.New("broker: the embedded broker's data directory is in use by another process")

// Embedded is an in-process kfake broker.
type Embedded struct {
	c        *kfake.Cluster
	lock     *os.File
	dir      string
	recovery *RecoveryReport
	// stop ends the stable-point recorder; done is closed when it returned.
	stop context.CancelFunc
	done chan struct{}
}

// StableInterval is how often a running embedded broker records its stable
// points (stable.json): a repair after a crash reads at most about this
// much of each log's tail.
const StableInterval = 5 * time.Second

// StartEmbedded starts the embedded broker persisting under dir (created if
// needed) on a random 127.0.0.1 port; the state of an earlier run in dir is
// reloaded, and repaired first when that run did not end with Close (see
// recover.go). One process at a time may run it: dir/LOCK is held (flock)
// until Close, and dir/ADDR names the listen address for other local
// processes.
func StartEmbedded(ctx context.Context, dir string, opts ...kfake.Opt) (*Embedded, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: data dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("broker: lock file: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w (%s)", ErrInUse, dir)
	}
	e := &Embedded{lock: lock, dir: dir}
	if needsRepair(dir) {
		rep, err := repair(ctx, dir)
		if err != nil {
			lock.Close()
			return nil, err
		}
		e.recovery = &rep
	}
	c, err := kfake.NewCluster(append(baseOpts(dir), opts...)...)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("broker: start embedded: %w", err)
	}
	e.c = c
	if err := writeFileSync(dir, runningFile, nil); err != nil {
		c.Close()
		lock.Close()
		return nil, fmt.Errorf("broker: write %s: %w", runningFile, err)
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stop, e.done = stop, make(chan struct{})
	go e.recordStable(rctx)
	if err := os.WriteFile(filepath.Join(dir, "ADDR"), []byte(strings.Join(e.Addrs(), ",")), 0o600); err != nil {
		e.Close()
		return nil, fmt.Errorf("broker: write ADDR: %w", err)
	}
	return e, nil
}

func baseOpts(dir string) []kfake.Opt {
	return []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(filepath.Join(dir, "data")),
		kfake.SyncWrites(),
		kfake.DefaultNumPartitions(1),
	}
}

// needsRepair reports whether the last run on dir ended without Close: its
// RUNNING file is still there, or the directory holds data from a version
// that kept no stable points (its shutdown cannot be known).
func needsRepair(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, runningFile)); err == nil {
		return true
	}
	_, errMeta := os.Stat(filepath.Join(dir, "data", "meta.json"))
	_, errStable := os.Stat(filepath.Join(dir, stableFile))
	return errMeta == nil && errStable != nil
}

// Recovery returns what the repair at start found, or nil when the last
// run ended with Close and nothing was repaired.
func (e *Embedded) Recovery() *RecoveryReport { return e.recovery }

// recordStable writes every partition's last stable offset to stable.json
// every StableInterval until ctx ends. A failed write keeps the older,
// lower points, which only make a repair read more.
func (e *Embedded) recordStable(ctx context.Context) {
	defer close(e.done)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.ClientID("bulwark-broker-stable"))
	if err != nil {
		return
	}
	defer cl.Close()
	t := time.NewTicker(StableInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		topics, err := kadm.NewClient(cl).ListTopics(ctx)
		if err != nil {
			continue
		}
		sp := stablePoints{}
		for _, topic := range topics.Names() {
			sp[topic] = map[int32]int64{}
			for _, pi := range e.c.PartitionInfos(topic) {
				sp[topic][pi.Partition] = pi.LastStableOffset
			}
		}
		_ = writeStable(e.dir, sp)
	}
}

// RunningAddrs returns the addresses of the embedded broker another process
// runs in dir (after StartEmbedded returned ErrInUse).
func RunningAddrs(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "ADDR"))
	if err != nil {
		return nil, fmt.Errorf("broker: find running embedded broker: %w", err)
	}
	return Seeds(string(b)), nil
}

// Addrs are the broker's listen addresses (host:port).
func (e *Embedded) Addrs() []string { return e.c.ListenAddrs() }

// Cluster exposes the kfake cluster, for fault injection in tests and
// `bulwark cdc verify`.
func (e *Embedded) Cluster() *kfake.Cluster { return e.c }

// Close stops the broker, flushing its state to disk; the next start then
// needs no repair.
func (e *Embedded) Close() {
	e.stop()
	<-e.done
	e.c.Close()
	_ = os.Remove(filepath.Join(e.dir, runningFile))
	_ = os.Remove(filepath.Join(e.dir, "ADDR"))
	e.lock.Close()
}

// Seeds parses a comma-separated broker list.
func Seeds(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ClientOpts returns the common options of clients of seeds.
func ClientOpts(seeds []string) []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID("bulwark")}
}
