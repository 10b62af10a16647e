package server_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/export"
	"github.com/bulwark-ledger/bulwark/internal/export/exporttest"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

// TestExportCrash SIGKILLs the process running an export's worker again
// and again while it exports, restarting it each time; the file it
// finally writes is byte-identical to an uninterrupted export of the same
// rows, and no chunk was read more than twice. Between two kills the test
// waits for one new checkpoint after the restart, so every kill lands in
// a different chunk (two kills in one chunk would read it three times,
// which says nothing about resumption). BULWARK_EXPORT_CRASH_KILLS and
// BULWARK_EXPORT_CRASH_TXS size it (make crash-test-export: 20 kills,
// 500,000 transactions = 1,000,000 entries).
func TestExportCrash(t *testing.T) {
	t.Parallel()
	kills, txs := 3, 15_000
	if v, err := strconv.Atoi(os.Getenv("BULWARK_EXPORT_CRASH_KILLS")); err == nil && v > 0 {
		kills = v
	}
	if v, err := strconv.Atoi(os.Getenv("BULWARK_EXPORT_CRASH_TXS")); err == nil && v > 0 {
		txs = v
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d, %d kills, %d transactions", seed, kills, txs)
	ctx := context.Background()
	url := pgtest.NewDB(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := exporttest.Seed(ctx, pool, "acme", 97, txs); err != nil {
		t.Fatal(err)
	}
	reg := control.NewRegistry()
	w := control.NewWatcher(pool, reg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Above the huge threshold: the huge queue, its rate raised so that
	// the test is not throttled to one chunk a second.
	if _, err := control.NewStore(pool, reg).Apply(ctx, "acme", []control.Change{
		{Key: control.KeyExportHugeThreshold, Value: "1000"},
		{Key: control.TaskRateKey(control.TaskExportHuge), Value: "1000"},
	}, control.Actor{KeyID: "admin", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	store := export.NewStore(pool, w)
	// About 200 chunks whatever the size (at least 500 rows each): each
	// chunk costs two syncs, which dominate small chunks.
	store.ChunkRows = max(500, 2*txs/200)
	chunks := 2 * txs / store.ChunkRows
	from, to := exporttest.Base, exporttest.Base.AddDate(1, 0, 0)
	req := export.Request{Kind: export.KindEntries, From: &from, To: &to, Format: export.FormatJSONL,
		Compression: export.CompressionGzip}
	job, _, err := store.Create(ctx, "acme", req)
	if err != nil {
		t.Fatal(err)
	}
	if job.Queue != export.QueueHuge {
		t.Fatalf("export in queue %s, want huge", job.Queue)
	}
	dataDir := t.TempDir()
	env := []string{"BULWARK_TEST_CHILD_ROLES=" + server.RoleExports, "BULWARK_TEST_CHILD_DATA_DIR=" + dataDir}
	addr := freeAddr(t)
	srv := startChild(t, url, addr, env...)
	defer func() { srv.kill() }()
	done := 0
	for k := 0; k < kills; k++ {
		// Kills spread over the whole export: the next one after 1 to
		// chunks/kills new checkpoints (on average half the export).
		if !progressed(t, store, job.ID, &done, 1+rng.IntN(max(1, chunks/kills))) {
			t.Logf("the export finished after %d kills", k)
			break
		}
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		srv.kill()
		// What the killed worker had recorded: the next kill waits for a
		// checkpoint past it.
		st, err := jobState(store, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		done = int(st.ChunksDone)
		t.Logf("kill %d: chunk %d, attempts %d, stalled %d, state %s", k+1, st.ChunksDone, st.Attempts, st.Stalled, st.State)
		srv = startChild(t, url, addr, env...)
	}
	crashed := waitExport(t, store, job.ID)
	reads, err := store.ChunkReads(ctx, "acme", job.ID)
	if err != nil {
		t.Fatal(err)
	}
	twice := 0
	for c, n := range reads {
		if n > 2 {
			t.Errorf("chunk %d read %d times", c, n)
		}
		if n == 2 {
			twice++
		}
	}
	t.Logf("%d chunks, %d read twice, %d attempts", crashed.ChunksDone, twice, crashed.Attempts)
	// The same request again, uninterrupted.
	again, _, err := store.Create(ctx, "acme", req)
	if err != nil {
		t.Fatal(err)
	}
	clean := waitExport(t, store, again.ID)
	a, errA := os.ReadFile(filepath.Join(dataDir, "exports", "acme", crashed.ID+".jsonl.gz"))
	b, errB := os.ReadFile(filepath.Join(dataDir, "exports", "acme", clean.ID+".jsonl.gz"))
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if string(a) != string(b) || crashed.SHA256 != clean.SHA256 || crashed.RowsWritten != int64(2*txs) {
		t.Fatalf("killed export: %d bytes, %d rows, %s; uninterrupted: %d bytes, %d rows, %s",
			len(a), crashed.RowsWritten, crashed.SHA256, len(b), clean.RowsWritten, clean.SHA256)
	}
}

// progressed waits until the export has recorded at least n checkpoints
// past *done (and updates it), reporting false when it finished instead.
func progressed(t *testing.T, store *export.Store, id string, done *int, n int) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := jobState(store, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != export.StateQueued && st.State != export.StateRunning {
			return false
		}
		if int(st.ChunksDone) >= *done+n {
			*done = int(st.ChunksDone)
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the export made fewer than %d checkpoints in 5 minutes", n)
	return false
}

func jobState(store *export.Store, id string) (*export.Job, error) {
	return store.Get(context.Background(), "acme", id)
}

func waitExport(t *testing.T, store *export.Store, id string) *export.Job {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		j, err := jobState(store, id)
		if err != nil {
			t.Fatal(err)
		}
		switch j.State {
		case export.StateSucceeded:
			return j
		case export.StateQueued, export.StateRunning:
			time.Sleep(20 * time.Millisecond)
		default:
			t.Fatalf("export %s: %s", j.State, j.Error)
		}
	}
	t.Fatal("export not finished in 5 minutes")
	return nil
}
