package exportbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/amount"
	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/export"
	"github.com/bulwark-ledger/bulwark/internal/export/exporttest"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
)

// Isolation modes.
const (
	ModeAlone    = "alone"                 // no huge exports
	ModeWithHuge = "with_huge"             // 4 huge exports in their own queue, pool and rate
	ModeShared   = "with_huge_shared_pool" // 4 huge exports, isolation off: one queue, one pool of 4 workers
)

func entriesRequest(format, compression string) export.Request {
	from, to := exporttest.Base, exporttest.Base.AddDate(1, 0, 0)
	return export.Request{Kind: export.KindEntries, From: &from, To: &to, Format: format, Compression: compression}
}

// throughput times one export of every entry of the big tenant in each
// format, alone and unthrottled (normal queue), then COPY of the same rows
// into a file, synced like the export's.
func (b *bench) throughput(ctx context.Context, out io.Writer) error {
	if err := b.set(ctx, bigTenant, control.KeyExportHugeThreshold, "1000000000000"); err != nil {
		return err
	}
	st := export.NewStore(b.pool, b.watcher)
	// Warm the cache first, untimed, before any worker runs: whichever ran
	// first would otherwise pay for reading the seeded rows from disk.
	if err := b.warm(ctx, st); err != nil {
		return err
	}
	// The default poll: an idle worker's claims (each a few KB of garbage)
	// would otherwise count in the export's memory.
	stop, err := b.runner(ctx, 1, 1, 0)
	if err != nil {
		return err
	}
	defer stop()
	defer b.removeFiles()
	var csvJob *export.Job
	for _, f := range []string{export.FormatCSV, export.FormatJSONL} {
		sampler := startRSS()
		j, _, err := st.Create(ctx, bigTenant, entriesRequest(f, export.CompressionNone))
		if err != nil {
			return err
		}
		if j, err = waitJob(ctx, st, bigTenant, j.ID, 20*time.Millisecond); err != nil {
			return err
		}
		peak := sampler.stop()
		secs := j.FinishedAt.Sub(*j.StartedAt).Seconds()
		b.rep.add("rows_per_sec", f, float64(j.RowsWritten)/secs, "rows/s")
		fmt.Fprintf(out, "export %-5s %d rows, %d bytes in %.2f s\n", f, j.RowsWritten, j.FileOffset, secs)
		if f == export.FormatCSV {
			csvJob = j
			b.rep.add("rss_peak_bytes", f, float64(peak), "bytes")
		}
	}
	n, secs, err := b.copyToFile(ctx, csvJob)
	if err != nil {
		return err
	}
	b.rep.add("rows_per_sec", "copy", float64(csvJob.RowsWritten)/secs, "rows/s")
	fmt.Fprintf(out, "COPY        %d rows, %d bytes in %.2f s\n", csvJob.RowsWritten, n, secs)
	if n != csvJob.FileOffset {
		return fmt.Errorf("COPY wrote %d bytes, the CSV export %d: not the same rows", n, csvJob.FileOffset)
	}
	return nil
}

// warm reads every row of the big tenant's export once, in export
// order, through COPY into nowhere.
func (b *bench) warm(ctx context.Context, st *export.Store) error {
	j, _, err := st.Create(ctx, bigTenant, entriesRequest(export.FormatCSV, export.CompressionNone))
	if err != nil {
		return err
	}
	if _, err := st.Cancel(ctx, bigTenant, j.ID); err != nil {
		return err
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	_, err = conn.Conn().PgConn().CopyTo(ctx, io.Discard, export.CopyStatement(j))
	return err
}

// copyToFile runs the COPY of j's rows into a file and syncs it.
func (b *bench) copyToFile(ctx context.Context, j *export.Job) (int64, float64, error) {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Release()
	f, err := os.Create(filepath.Join(b.cfg.Dir, "copy.csv"))
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	start := time.Now()
	w := bufio.NewWriterSize(f, 256<<10)
	tag, err := conn.Conn().PgConn().CopyTo(ctx, w, export.CopyStatement(j))
	if err != nil {
		return 0, 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	secs := time.Since(start).Seconds()
	if tag.RowsAffected() != j.RowsWritten {
		return 0, 0, fmt.Errorf("COPY read %d rows, the export %d", tag.RowsAffected(), j.RowsWritten)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	return st.Size(), secs, nil
}

// rss samples the process's resident set every 10 ms. Sampling must not
// allocate: a sampler that allocates 5 KB per read (os.ReadFile and a
// split) would itself grow the heap by tens of megabytes over a long
// export and be measured as the export's memory.
type rss struct {
	done chan struct{}
	peak chan int64
}

func startRSS() *rss {
	r := &rss{done: make(chan struct{}), peak: make(chan int64, 1)}
	go func() {
		f, err := os.Open("/proc/self/status")
		if err != nil {
			<-r.done
			r.peak <- 0 // no procfs: no figure
			return
		}
		defer f.Close()
		var buf [4096]byte
		var peak int64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, readRSS(f, buf[:]))
			select {
			case <-r.done:
				r.peak <- peak
				return
			case <-t.C:
			}
		}
	}()
	return r
}

func (r *rss) stop() int64 { close(r.done); return <-r.peak }

var vmRSS = []byte("VmRSS:")

// readRSS is VmRSS of /proc/self/status in bytes (0 if absent), read
// into buf from offset 0 (procfs regenerates the file on each read).
func readRSS(f *os.File, buf []byte) int64 {
	n, _ := f.ReadAt(buf, 0)
	b := buf[:n]
	i := bytes.Index(b, vmRSS)
	if i < 0 {
		return 0
	}
	var kb int64
	for _, c := range b[i+len(vmRSS):] {
		switch {
		case c >= '0' && c <= '9':
			kb = kb*10 + int64(c-'0')
		case c == ' ' || c == '\t':
		default:
			return kb << 10
		}
	}
	return kb << 10
}

// isolation measures small exports and ledger writes for Duration, with
// no huge export, with 4 isolated ones, or with 4 on a shared pool.
func (b *bench) isolation(ctx context.Context, mode string, out io.Writer) error {
	if err := b.set(ctx, bigTenant, control.KeyExportHugeThreshold, "0",
		control.KeyExportHugeMaxRunningEach, "4", control.KeyExportMaxInFlight, "100",
		control.TaskRateKey(control.TaskExportHuge), strconv.FormatFloat(b.cfg.HugeRate, 'f', -1, 64)); err != nil {
		return err
	}
	st := export.NewStore(b.pool, b.watcher)
	normal, huge := 2, 4
	if mode == ModeShared {
		st.Shared, normal, huge = true, 4, 1 // every export in one queue of 4 workers
	}
	// A 20 ms poll: a small export's latency includes the wait for an
	// idle worker's next claim, the same in every mode.
	stop, err := b.runner(ctx, normal, huge, 20*time.Millisecond)
	if err != nil {
		return err
	}
	defer stop()
	defer b.removeFiles()
	var big []string
	if mode != ModeAlone {
		if big, err = b.startHuge(ctx, st); err != nil {
			return err
		}
	}
	var small, writes []time.Duration
	var censored int
	var wg sync.WaitGroup
	var smallErr, writeErr error
	deadline := time.Now().Add(b.cfg.Duration)
	wg.Go(func() { small, censored, smallErr = b.smallExports(ctx, st, deadline) })
	wg.Go(func() { writes, writeErr = b.ledgerWrites(ctx, mode, deadline) })
	wg.Wait()
	for _, id := range big {
		if _, err := st.Cancel(ctx, bigTenant, id); err != nil && !errors.Is(err, export.ErrFinished) {
			return err
		}
	}
	if err := errors.Join(smallErr, writeErr); err != nil {
		return err
	}
	b.rep.add("small_export_p99_ms", mode, p99ms(small), "ms")
	b.rep.add("ledger_write_p99_ms", mode, p99ms(writes), "ms")
	note := ""
	if censored > 0 {
		note = fmt.Sprintf(" (%d still waiting at the end, counted with their wait so far)", censored)
	}
	fmt.Fprintf(out, "%-22s small exports %d, p99 %.1f ms%s; ledger writes %d, p99 %.2f ms\n",
		mode, len(small), p99ms(small), note, len(writes), p99ms(writes))
	return nil
}

// startHuge queues 4 huge exports of the big tenant and waits until they
// run.
func (b *bench) startHuge(ctx context.Context, st *export.Store) ([]string, error) {
	var ids []string
	for _, r := range []export.Request{
		entriesRequest(export.FormatCSV, export.CompressionNone),
		entriesRequest(export.FormatJSONL, export.CompressionNone),
		entriesRequest(export.FormatCSV, export.CompressionGzip),
		entriesRequest(export.FormatJSONL, export.CompressionGzip),
	} {
		j, _, err := st.Create(ctx, bigTenant, r)
		if err != nil {
			return nil, err
		}
		ids = append(ids, j.ID)
	}
	for _, id := range ids {
		for {
			j, err := st.Get(ctx, bigTenant, id)
			if err != nil {
				return nil, err
			}
			if j.State != export.StateQueued {
				break
			}
			if err := sleep(ctx, 10*time.Millisecond); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

// smallExports runs small exports one after the other until deadline and
// returns their latencies (queued to succeeded). One still waiting at the
// deadline counts with its wait so far (censored).
func (b *bench) smallExports(ctx context.Context, st *export.Store, deadline time.Time) ([]time.Duration, int, error) {
	var lat []time.Duration
	formats := [][2]string{{export.FormatCSV, export.CompressionNone}, {export.FormatJSONL, export.CompressionNone},
		{export.FormatCSV, export.CompressionGzip}, {export.FormatJSONL, export.CompressionGzip}}
	for i := 0; time.Now().Before(deadline); i++ {
		f := formats[i%len(formats)]
		start := time.Now()
		j, _, err := st.Create(ctx, smallTenant, entriesRequest(f[0], f[1]))
		if err != nil {
			return nil, 0, err
		}
		for {
			j, err = st.Get(ctx, smallTenant, j.ID)
			if err != nil {
				return nil, 0, err
			}
			if j.State == export.StateSucceeded {
				lat = append(lat, time.Since(start))
				break
			}
			if j.State != export.StateQueued && j.State != export.StateRunning {
				return nil, 0, fmt.Errorf("small export %s: %s", j.State, j.Error)
			}
			if time.Now().After(deadline) {
				lat = append(lat, time.Since(start))
				_, _ = st.Cancel(ctx, smallTenant, j.ID)
				return lat, 1, nil
			}
			if err := sleep(ctx, 2*time.Millisecond); err != nil {
				return nil, 0, err
			}
		}
	}
	return lat, 0, nil
}

// writers and writePace shape the ledger load: 4 writers, each one
// single-transfer request every 5 ms at most (≈ 800/s), a steady load well
// under the pipeline's capacity, so its latency shows interference.
const (
	writers   = 4
	writePace = 5 * time.Millisecond
)

// ledgerWrites sends single transfers through a commit pipeline on the
// ledger's own pool until deadline and returns their latencies.
func (b *bench) ledgerWrites(ctx context.Context, mode string, deadline time.Time) ([]time.Duration, error) {
	pipe := ledger.NewPipeline(b.pool, ledger.PipelineConfig{}, b.cfg.Log, prometheus.NewRegistry())
	defer pipe.Close()
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			var lat []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				batch, lerr := ledger.NewBatch([]ledger.TxInput{{IdempotencyKey: fmt.Sprintf("%s-%d-%d", mode, w, i),
					Postings: []ledger.Posting{{Source: "w1", Destination: "w2", Amount: amount.FromUint64(1), Asset: "USD"}}}})
				if lerr != nil {
					mu.Lock()
					firstErr = lerr
					mu.Unlock()
					return
				}
				start := time.Now()
				if _, err := pipe.Submit(ctx, writerTenant, batch); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				lat = append(lat, time.Since(start))
				if err := sleep(ctx, writePace); err != nil {
					return
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return all, firstErr
}

func p99ms(d []time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*99+99)/100 - 1
	return float64(s[i].Microseconds()) / 1000
}
