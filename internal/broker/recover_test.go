package broker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// crashChildEnv makes the test binary a broker process that leaves a
// transaction open and exits without Close, as a SIGKILL would (every batch
// is fsynced before it is acknowledged, so what is on disk is the same).
const crashChildEnv = "BULWARK_BROKER_CRASH_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(crashChildEnv); v != "" {
		mode, dir, _ := strings.Cut(v, ":")
		if err := crashChild(mode, dir); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0) // no Close: the broker dies with its transaction open
	}
	os.Exit(m.Run())
}

// crashChild commits transaction 1 on topics a and b, produces transaction
// 2 to both, then, in mode "partial", writes its COMMIT marker to a only,
// as an EndTxn cut short by a crash does.
func crashChild(mode, dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, dir)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.TransactionalID("crash"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 1, 1, nil, "a", "b"); err != nil {
		return err
	}
	txn := func(val string) ([]*kgo.Record, error) {
		if err := cl.BeginTransaction(); err != nil {
			return nil, err
		}
		recs := []*kgo.Record{{Topic: "a", Value: []byte(val)}, {Topic: "b", Value: []byte(val)}}
		return recs, cl.ProduceSync(ctx, recs...).FirstErr()
	}
	if _, err := txn("committed-1"); err != nil {
		return err
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return err
	}
	recs, err := txn("open-2")
	if err != nil {
		return err
	}
	if mode == "torn" {
		// The crash fell between the batch's write and its index entry's.
		idx := filepath.Join(dir, "data", "partitions", "a-0", "0.idx")
		st, err := os.Stat(idx)
		if err != nil {
			return err
		}
		return os.Truncate(idx, st.Size()-indexEntryBytes)
	}
	if mode == "partial" {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.Committed = recs[0].ProducerID, recs[0].ProducerEpoch, true
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = "a", []int32{0}
		m.Topics = append(m.Topics, mt)
		req.Markers = append(req.Markers, m)
		if _, err := req.RequestWith(ctx, cl); err != nil {
			return err
		}
	}
	return nil
}

// TestRepairAfterCrash: a broker process dies with a transaction open; the
// next start aborts it (or, when its COMMIT marker reached one partition
// before the crash, commits it on the others), so a read_committed reader
// sees whole transactions, later transactions of the same producer are not
// lost, and a further clean restart reads the same.
func TestRepairAfterCrash(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"abort", []string{"committed-1", "after-3"}},
		{"torn", []string{"committed-1", "after-3"}},
		{"partial", []string{"committed-1", "open-2", "after-3"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+tc.mode+":"+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("crash child: %v\n%s", err, out)
			}
			e, err := StartEmbedded(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			rep := e.Recovery()
			if rep == nil {
				t.Fatal("no repair after an unclean shutdown")
			}
			if tc.mode == "partial" && (len(rep.Committed) != 1 || !strings.HasPrefix(rep.Committed[0], "b/0@") || len(rep.Aborted) != 0) {
				t.Fatalf("repair: %+v, want b committed", rep)
			}
			if tc.mode != "partial" && len(rep.Aborted) != 2 {
				t.Fatalf("repair: %+v, want a and b aborted", rep)
			}
			if wantIdx := tc.mode == "torn"; (len(rep.Indexes) == 1) != wantIdx || len(rep.Indexes) > 1 {
				t.Fatalf("repair: indexes rebuilt %q (torn: %v)", rep.Indexes, wantIdx)
			}
			// The same producer goes on: its next transaction must not be
			// swallowed by the aborted one before it.
			cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.TransactionalID("crash"))
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "a", Value: []byte("after-3")},
				&kgo.Record{Topic: "b", Value: []byte("after-3")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			cl.Close()
			checkCommitted(ctx, t, e, tc.want)
			e.Close()
			// The next start replays the logs, as after another crash, and
			// must read the same (a torn index used to shift every later
			// entry and surface aborted records here).
			if err := removeSnapshots(dir); err != nil {
				t.Fatal(err)
			}
			e, err = StartEmbedded(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if e.Recovery() != nil {
				t.Fatalf("repair after a clean shutdown: %+v", e.Recovery())
			}
			checkCommitted(ctx, t, e, tc.want)
		})
	}
}

// checkCommitted reads a and b with read_committed, one fetch at a time
// from the start, and compares the values with want.
func checkCommitted(ctx context.Context, t *testing.T, e *Embedded, want []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, topic := range []string{"a", "b"} {
		pi := e.Cluster().PartitionInfo(topic, 0)
		if pi.LastStableOffset != pi.HighWatermark {
			t.Errorf("%s: stable offset %d below the end %d", topic, pi.LastStableOffset, pi.HighWatermark)
		}
		var got []string
		err := ReadRange(ctx, cl, topic, 0, 0, pi.LastStableOffset, kgo.ReadCommitted(), func(r *kgo.Record) error {
			if !r.Attrs.IsControl() {
				got = append(got, string(r.Value))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s read_committed: %q, want %q", topic, got, want)
		}
		// A plain consumer, whose fetches span the aborted range and the
		// next transaction, must see the same.
		cons, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		if err != nil {
			t.Fatal(err)
		}
		var polled []string
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		for len(polled) < len(want) && pctx.Err() == nil {
			cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) { polled = append(polled, string(r.Value)) })
		}
		cancel()
		cons.Close()
		if !slices.Equal(polled, want) {
			t.Errorf("%s consumer: %q, want %q", topic, polled, want)
		}
	}
}

// TestIndexRebuildMatchesKfake: the index the repair computes from a
// segment equals, byte for byte, the one kfake wrote for it (plain records,
// a committed and an aborted transaction). It fails when kfake's format
// changes under the repair.
func TestIndexRebuildMatchesKfake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	e, err := StartEmbedded(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := kadm.NewClient(plain).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("plain")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txn, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.TransactionalID("x"), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	for _, end := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort} {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := txn.ProduceSync(ctx, &kgo.Record{Value: []byte("a")}, &kgo.Record{Value: []byte("b")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, end); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	seg := filepath.Join(dir, "data", "partitions", "t-0", "0.dat")
	got, controls, _, err := indexFor(seg, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "data", "partitions", "t-0", "0.idx"))
	if err != nil {
		t.Fatal(err)
	}
	if len(controls) < 4 || string(got) != string(want) {
		t.Fatalf("rebuilt index (%d batches)\n%x\nkfake's\n%x", len(controls), got, want)
	}
	if fixed, err := repairIndexes(filepath.Join(dir, "data")); err != nil || len(fixed) != 0 {
		t.Fatalf("repairIndexes on sound indexes: %v, %v", fixed, err)
	}
}
