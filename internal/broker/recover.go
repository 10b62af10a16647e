package broker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Crash recovery of the embedded broker.
//
// kfake persists every produced batch, but not the transaction
// coordinator's state: after a crash (SIGKILL of the process that runs it)
// a transaction that was open has data on disk and no commit or abort
// marker. kfake's load treats such a transaction as aborted in memory only:
//
//   - no marker is ever written, so read_committed clients, which end an
//     aborted range at the producer's next ABORT marker, also drop the
//     producer's later committed batches in the same fetch response (lost
//     events), and a reader waiting for the record just below the stable
//     end waits forever when that record is the dangling one (the relay's
//     checkpoint read stalled this way);
//   - on the next load the dangling batches are attributed to the
//     producer's next transaction and become committed (duplicate and
//     out-of-order events);
//   - when its snapshot.json still matches the segment files, kfake takes
//     the last stable offset from the snapshot with no crash handling, and
//     the offset can stay stuck below the end for good;
//   - EndTxn writes the markers of a transaction partition by partition
//     with no durable decision record, so a crash in between leaves it
//     committed on some partitions and open (then aborted) on others: a
//     Kafka transaction that is not atomic (seen: the entries committed,
//     the relay's checkpoint aborted, the relay relayed them again).
//
// So after an unclean shutdown StartEmbedded repairs the log before anyone
// can connect: it rebuilds torn segment indexes, loads the directory into a private instance on a port
// nobody knows, reads every partition from its stable point (below which
// every transaction was decided on disk) to its end with read_uncommitted,
// and for each transaction without a marker on some partition writes one
// (WriteTxnMarkers): COMMIT when the transaction's COMMIT marker reached
// another partition, ABORT otherwise. It checks that every partition is
// then stable to its end, closes the instance, and removes kfake's
// snapshots so that the real start replays the logs and their markers.
// No producer can continue such a transaction: the process that ran it is
// gone with the broker.
//
// A clean shutdown (Close) is not repaired: kfake saves the open
// transactions of live producers and restores them, and a producer in
// another process may commit one after the restart (bulwark cdc verify
// restarts the broker under a running relay).
//
// Files under the broker directory:
//   - RUNNING exists while a broker runs on the directory; found at start,
//     it means the last run did not end with Close.
//   - stable.json holds, per partition, an offset below which every
//     transaction has its marker on disk (the last stable offset seen), so
//     that a repair reads only the tail of each log.

const (
	runningFile = "RUNNING"
	stableFile  = "stable.json"
)

// stablePoints maps topic → partition → offset.
type stablePoints map[string]map[int32]int64

func readStable(dir string) stablePoints {
	b, err := os.ReadFile(filepath.Join(dir, stableFile))
	if err != nil {
		return stablePoints{}
	}
	var sp stablePoints
	if json.Unmarshal(b, &sp) != nil || sp == nil {
		return stablePoints{} // unreadable: repair from the start of each log
	}
	return sp
}

// writeStable replaces stable.json atomically (write, fsync, rename).
func writeStable(dir string, sp stablePoints) error {
	b, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	return writeFileSync(dir, stableFile, b)
}

func writeFileSync(dir, name string, b []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RecoveryReport says what a repair found.
type RecoveryReport struct {
	// Partitions read and records scanned.
	Partitions, Records int
	// Aborted and Committed list the transactions closed with a marker,
	// as "topic/partition@first-offset pid=… epoch=…".
	Aborted, Committed []string
	// Indexes lists the segment indexes rebuilt (index.go).
	Indexes []string
	// Duration is how long the repair took (two loads of the directory and
	// a read of each log's tail).
	Duration time.Duration
	// Unrepairable counts transactions left without a marker in the middle
	// of a log by an earlier version (their producer went on with a later
	// epoch): a marker can only be appended, so they stay as kfake reads
	// them. Only a new broker directory (and `bulwark cdc resnapshot`)
	// clears them.
	Unrepairable int
}

// txnKey names one transaction: the relay's client (franz-go, transaction
// version 2, KIP-890) bumps the producer epoch at every transaction end,
// so a producer id and epoch identify a transaction on every partition.
type txnKey struct {
	pid   int64
	epoch int16
}

// scan is what a repair learnt from the logs.
type scan struct {
	// open: per partition, each producer's transaction without a marker.
	open map[tp]map[int64]int64 // partition → pid → first offset
	// epochs of those open transactions.
	epochs map[tp]map[int64]int16
	// decided: the outcome of every transaction with a marker somewhere.
	decided map[txnKey]bool // true = committed
	// sharedEpochs is set when one partition holds two markers of one
	// producer id and epoch: a client without per-transaction epochs
	// (transaction version 1), for which a marker elsewhere may belong to
	// an earlier transaction. Open transactions are then aborted, never
	// completed.
	sharedEpochs bool
}

type tp struct {
	topic     string
	partition int32
}

// repair loads dir into a private kfake instance, finishes every
// transaction a crash left open (see the top of this file) and closes the
// instance. A transaction whose COMMIT marker reached some partitions
// before the crash (kfake writes the markers of one EndTxn partition by
// partition, with no durable "prepare commit" record as Kafka's
// coordinator has) is committed on the others too: the client had asked
// to commit, after all its records were acknowledged. Any other open
// transaction was never decided, so nothing acknowledged it: it is
// aborted.
func repair(ctx context.Context, dir string) (RecoveryReport, error) {
	var rep RecoveryReport
	began := time.Now()
	// Before kfake reads an index torn by the crash (index.go).
	fixed, err := repairIndexes(filepath.Join(dir, "data"))
	if err != nil {
		return rep, err
	}
	rep.Indexes = fixed
	// kfake's snapshot path skips its crash handling; the full replay
	// rebuilds the aborted ranges and stable offsets from the markers on
	// disk, which is what the repair reads and writes.
	if err := removeSnapshots(dir); err != nil {
		return rep, err
	}
	c, err := kfake.NewCluster(baseOpts(dir)...) // random port, not published
	if err != nil {
		return rep, fmt.Errorf("broker: load for repair: %w", err)
	}
	ends, err := finishOpen(ctx, c, readStable(dir), &rep)
	c.Close()
	if err != nil {
		return rep, err
	}
	// The instance's in-memory aborted ranges predate the markers just
	// written (a range it aborted at load may now be committed): its
	// snapshots would carry them, so the next load replays the logs.
	if err := removeSnapshots(dir); err != nil {
		return rep, err
	}
	if err := writeStable(dir, ends); err != nil {
		return rep, fmt.Errorf("broker: repair: %w", err)
	}
	rep.Duration = time.Since(began)
	return rep, nil
}

// finishOpen scans every partition of c from its stable point, writes the
// marker of every transaction left open, and returns the new stable
// points: every partition's end.
func finishOpen(ctx context.Context, c *kfake.Cluster, stable stablePoints, rep *RecoveryReport) (stablePoints, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ClientID("bulwark-broker-repair"))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: repair: list topics: %w", err)
	}
	sc := scan{open: map[tp]map[int64]int64{}, epochs: map[tp]map[int64]int16{}, decided: map[txnKey]bool{}}
	var parts []tp
	for _, topic := range topics.Names() {
		for _, pi := range c.PartitionInfos(topic) {
			p := tp{topic, pi.Partition}
			parts = append(parts, p)
			from := max(stable[topic][pi.Partition], pi.LogStartOffset)
			n, lost, err := sc.read(ctx, cl, p, from, pi.HighWatermark)
			if err != nil {
				return nil, err
			}
			rep.Partitions++
			rep.Records += n
			rep.Unrepairable += lost
		}
	}
	ends := stablePoints{}
	for _, p := range parts {
		if err := sc.finish(ctx, cl, p, rep); err != nil {
			return nil, err
		}
		after := c.PartitionInfo(p.topic, p.partition)
		if after.LastStableOffset != after.HighWatermark {
			return nil, fmt.Errorf("broker: repair: %s/%d still unstable (stable %d, end %d)",
				p.topic, p.partition, after.LastStableOffset, after.HighWatermark)
		}
		if ends[p.topic] == nil {
			ends[p.topic] = map[int32]int64{}
		}
		ends[p.topic][p.partition] = after.HighWatermark
	}
	sort.Strings(rep.Aborted)
	sort.Strings(rep.Committed)
	return ends, nil
}

// finish writes the marker of each transaction open on p: COMMIT when its
// COMMIT marker is on another partition, ABORT otherwise.
func (sc *scan) finish(ctx context.Context, cl *kgo.Client, p tp, rep *RecoveryReport) error {
	for pid, first := range sc.open[p] {
		k := txnKey{pid, sc.epochs[p][pid]}
		commit := sc.decided[k] && !sc.sharedEpochs
		if err := writeMarker(ctx, cl, p, k, commit); err != nil {
			return err
		}
		what := fmt.Sprintf("%s/%d@%d pid=%d epoch=%d", p.topic, p.partition, first, pid, k.epoch)
		if commit {
			rep.Committed = append(rep.Committed, what)
		} else {
			rep.Aborted = append(rep.Aborted, what)
		}
	}
	return nil
}

// read scans [from, to) of partition p uncommitted. lost counts
// transactions of a producer abandoned for a later epoch without a marker.
func (sc *scan) read(ctx context.Context, cl *kgo.Client, p tp, from, to int64) (records, lost int, err error) {
	open, epochs := map[int64]int64{}, map[int64]int16{}
	sc.open[p], sc.epochs[p] = open, epochs
	markers := map[txnKey]bool{}
	err = ReadRange(ctx, cl, p.topic, p.partition, from, to, kgo.ReadUncommitted(), func(r *kgo.Record) error {
		records++
		if !r.Attrs.IsTransactional() {
			return nil
		}
		if r.Attrs.IsControl() {
			// Key: int16 version, int16 type (0 abort, 1 commit).
			k := txnKey{r.ProducerID, r.ProducerEpoch}
			if markers[k] {
				sc.sharedEpochs = true
			}
			markers[k] = true
			if len(r.Key) >= 4 {
				sc.decided[k] = binary.BigEndian.Uint16(r.Key[2:4]) == 1
			}
			delete(open, r.ProducerID)
			delete(epochs, r.ProducerID)
			return nil
		}
		_, ok := open[r.ProducerID]
		if ok && epochs[r.ProducerID] == r.ProducerEpoch {
			return nil // more of the open transaction
		}
		if ok {
			lost++ // the producer went on under a new epoch without a marker
		}
		open[r.ProducerID], epochs[r.ProducerID] = r.Offset, r.ProducerEpoch
		return nil
	})
	return records, lost, err
}

// removeSnapshots deletes kfake's per-partition snapshot.json files.
func removeSnapshots(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "data", "partitions", "*", "snapshot.json"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("broker: repair: %w", err)
		}
	}
	return nil
}

// writeMarker appends the COMMIT or ABORT marker of transaction k to p.
func writeMarker(ctx context.Context, cl *kgo.Client, p tp, k txnKey, commit bool) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = k.pid, k.epoch, commit
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = p.topic, []int32{p.partition}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	kresp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("broker: repair: marker %s/%d: %w", p.topic, p.partition, err)
	}
	if len(kresp.Markers) == 0 {
		return errors.New("broker: repair: empty WriteTxnMarkers response")
	}
	for _, rm := range kresp.Markers {
		for _, rt := range rm.Topics {
			for _, rpart := range rt.Partitions {
				if err := kerr.ErrorForCode(rpart.ErrorCode); err != nil {
					return fmt.Errorf("broker: repair: marker %s/%d: %w", p.topic, p.partition, err)
				}
			}
		}
	}
	return nil
}
