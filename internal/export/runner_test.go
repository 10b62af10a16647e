package export

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/export/exporttest"
)

// TestResumeFromCheckpoint: a worker stopped after its third chunk, with
// stray bytes past the checkpoint in its file (a chunk written but not
// recorded), is resumed by another runner from the checkpoint; the file
// is byte-identical to an uninterrupted export, and only the chunk the
// stop fell before is counted twice (its read was counted, not made).
func TestResumeFromCheckpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := exporttest.Seed(context.Background(), e.pool, "acme", 11, 2600); err != nil {
		t.Fatal(err)
	}
	from, to := exporttest.Base, exporttest.Base.AddDate(1, 0, 0)
	req := Request{Kind: KindEntries, From: &from, To: &to, Format: FormatJSONL, Compression: CompressionGzip}
	first := e.create("acme", req)
	stopped := make(chan struct{})
	stop := e.runner(Config{WorkerID: "a"}, func(j *Job) {
		if j.ID != first.ID || j.ChunksDone != 3 {
			return
		}
		f, err := os.OpenFile(filePath(e.dir, j), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := f.Write([]byte("half a chunk that no checkpoint records")); err != nil {
			t.Error(err)
		}
		f.Close()
		close(stopped)
	})
	<-stopped
	stop()
	j, err := e.store.Get(context.Background(), "acme", first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != StateRunning || j.ChunksDone != 3 {
		t.Fatalf("after the stop: %s, %d chunks", j.State, j.ChunksDone)
	}
	e.runner(Config{WorkerID: "b"}, nil)
	resumed := e.wait("acme", first.ID, 30*time.Second)
	if resumed.State != StateSucceeded || resumed.ChunksDone < 10 || resumed.Stalled != 0 || resumed.Attempts != 1 { // a graceful stop is no attempt
		t.Fatalf("resumed: %s (%s), %d chunks, %d attempts, %d stalled", resumed.State, resumed.Error, resumed.ChunksDone,
			resumed.Attempts, resumed.Stalled)
	}
	// The same request again (the first finished, so a new export).
	again := e.create("acme", req)
	if again.ID == first.ID {
		t.Fatal("a finished export was returned for a new request")
	}
	clean := e.wait("acme", again.ID, 30*time.Second)
	a, _ := os.ReadFile(filePath(e.dir, resumed))
	b, _ := os.ReadFile(filePath(e.dir, clean))
	if len(a) == 0 || string(a) != string(b) || resumed.SHA256 != clean.SHA256 {
		t.Fatalf("resumed file (%d bytes, %s) differs from the uninterrupted one (%d bytes, %s)",
			len(a), resumed.SHA256, len(b), clean.SHA256)
	}
	reads, err := e.store.ChunkReads(context.Background(), "acme", first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(reads)) != resumed.ChunksDone {
		t.Fatalf("%d chunks counted, %d done", len(reads), resumed.ChunksDone)
	}
	// Counts are upper bounds: the checkpoint of chunk 2 counted the read
	// of chunk 3, which the stopped worker never made; the resumed one
	// counted it again.
	for c, n := range reads {
		if want := 1 + b2i(c == 3); n != want {
			t.Errorf("chunk %d read %d times, want %d", c, n, want)
		}
	}
}

// TestAttemptCap: a job that fails every attempt fails for good after
// MaxAttempts, with the reason.
func TestAttemptCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := exporttest.Seed(context.Background(), e.pool, "acme", 3, 10); err != nil {
		t.Fatal(err)
	}
	// A file where the tenant's directory belongs: every attempt fails.
	if err := os.WriteFile(filepath.Join(e.dir, "acme"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	j := e.create("acme", Request{Kind: KindAccounts})
	e.runner(Config{MaxAttempts: 2}, nil)
	got := e.wait("acme", j.ID, 20*time.Second)
	if got.State != StateFailed || got.Attempts != 2 || !strings.Contains(got.Error, "gave up after 2 attempts without progress") {
		t.Fatalf("%s after %d attempts: %q", got.State, got.Attempts, got.Error)
	}
}

// TestHugeIsolation: with the huge rate at 0, huge exports pause (keeping
// their lease, within the per-tenant cap) while a normal export runs to
// the end; raising the rate resumes them; a cancel stops a paused one.
func TestHugeIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for _, tn := range []string{"big", "small"} {
		if err := exporttest.Seed(ctx, e.pool, tn, 7, 1200); err != nil {
			t.Fatal(err)
		}
	}
	e.set("big", control.KeyExportHugeThreshold, "0")
	e.set("big", control.TaskRateKey(control.TaskExportHuge), "0")
	e.set("big", control.KeyExportHugeMaxRunningEach, "1")
	from, to := exporttest.Base, exporttest.Base.AddDate(1, 0, 0)
	h1 := e.create("big", Request{Kind: KindEntries, From: &from, To: &to})
	h2 := e.create("big", Request{Kind: KindTransactions, From: &from, To: &to})
	h3 := e.create("big", Request{Kind: KindAccounts})
	if h1.Queue != QueueHuge || h2.Queue != QueueHuge {
		t.Fatalf("queues %s, %s", h1.Queue, h2.Queue)
	}
	e.runner(Config{NormalWorkers: 1, HugeWorkers: 2, Lease: 2 * time.Second}, nil)
	small := e.create("small", Request{Kind: KindEntries, From: &from, To: &to})
	if small.Queue != QueueNormal {
		t.Fatalf("small export in queue %s", small.Queue)
	}
	if got := e.wait("small", small.ID, 30*time.Second); got.State != StateSucceeded {
		t.Fatalf("normal export: %s", got.State)
	}
	time.Sleep(2500 * time.Millisecond) // over a lease: paused jobs keep theirs by heartbeat
	running, paused := 0, ""
	for _, id := range []string{h1.ID, h2.ID, h3.ID} {
		j, err := e.store.Get(ctx, "big", id)
		if err != nil {
			t.Fatal(err)
		}
		if j.RowsWritten != 0 || j.ChunksDone != 0 || j.finished() {
			t.Fatalf("huge export %s moved while paused: %s, %d rows", id, j.State, j.RowsWritten)
		}
		if j.State == StateRunning {
			running, paused = running+1, id
			if j.Attempts != 1 {
				t.Fatalf("paused export lost its lease: %d attempts", j.Attempts)
			}
		}
	}
	if running != 1 {
		t.Fatalf("%d huge exports of one tenant running, cap 1", running)
	}
	// Cancel the paused one: its worker stops and removes its file.
	cancelled, err := e.store.Cancel(ctx, "big", paused)
	if err != nil {
		t.Fatal(err)
	}
	e.set("big", control.TaskRateKey(control.TaskExportHuge), "1000")
	for _, id := range []string{h1.ID, h2.ID, h3.ID} {
		want := StateSucceeded
		if id == paused {
			want = StateCancelled
		}
		if got := e.wait("big", id, 30*time.Second); got.State != want {
			t.Fatalf("huge export after resume: %s (%s), want %s", got.State, got.Error, want)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(filePath(e.dir, cancelled))
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cancelled export's file still there: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
