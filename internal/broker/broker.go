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
package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

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
	c    *kfake.Cluster
	lock *os.File
	dir  string
}

// StartEmbedded starts the embedded broker persisting under dir (created if
// needed) on a random 127.0.0.1 port; the state of an earlier run in dir is
// reloaded. One process at a time may run it: dir/LOCK is held (flock) until
// Close, and dir/ADDR names the listen address for other local processes.
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
	base := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(filepath.Join(dir, "data")),
		kfake.SyncWrites(),
		kfake.DefaultNumPartitions(1),
	}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("broker: start embedded: %w", err)
	}
	e := &Embedded{c: c, lock: lock, dir: dir}
	if err := os.WriteFile(filepath.Join(dir, "ADDR"), []byte(strings.Join(e.Addrs(), ",")), 0o600); err != nil {
		e.Close()
		return nil, fmt.Errorf("broker: write ADDR: %w", err)
	}
	return e, nil
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

// Close stops the broker, flushing its state to disk.
func (e *Embedded) Close() {
	e.c.Close()
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
