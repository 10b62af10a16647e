package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestEmbeddedPersistsAndLocks: records survive a restart from the same
// directory, and a second broker on a directory in use is refused.
func TestEmbeddedPersistsAndLocks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	e, err := StartEmbedded(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StartEmbedded(ctx, dir); !errors.Is(err, ErrInUse) {
		t.Fatalf("second StartEmbedded: %v, want ErrInUse", err)
	}
	if addrs, err := RunningAddrs(dir); err != nil || len(addrs) != 1 || addrs[0] != e.Addrs()[0] {
		t.Fatalf("RunningAddrs = %v, %v", addrs, err)
	}
	cl, err := kgo.NewClient(append(ClientOpts(e.Addrs()), kgo.DefaultProduceTopic("t"))...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	e.Close()

	e, err = StartEmbedded(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cl, err = kgo.NewClient(append(ClientOpts(e.Addrs()), kgo.ConsumeTopics("t"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	if rs := fs.Records(); len(rs) != 1 || string(rs[0].Value) != "kept" {
		t.Fatalf("after restart: %d records", len(rs))
	}
}

func TestSeeds(t *testing.T) {
	if got := Seeds(" a:1, ,b:2 "); len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
		t.Fatalf("Seeds = %q", got)
	}
}
