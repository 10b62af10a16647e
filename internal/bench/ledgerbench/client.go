package ledgerbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
)

// maxResponseBytes bounds a response read: a batch100 answer is ~100 ×
// 450 B ≈ 45 KiB.
const maxResponseBytes = 1 << 20

// load is what the clients of one run share; read-only while they run.
type load struct {
	hc      *http.Client
	url     string // POST target
	auth    string // Authorization header value
	size    int    // transfers per request
	work    *workload
	seed    uint64
	measure *window
	// cl, when set (mode client), sends each transfer with cl.Transfer
	// instead of a hand-built request.
	cl *client.Client
}

// maxWindowExtension bounds how far past its planned end a window waits
// for its minimum of completed requests: a server that answers nothing for
// this long measures 0 transfers rather than hanging the benchmark. It
// equals requestTimeout, after which every in-flight request has ended.
const maxWindowExtension = requestTimeout

// window is the measured interval; requests that finish inside it count
// towards throughput and latency, and clients stop sending once it closes.
//
// It closes at plannedEnd, or later, once minRequests requests have
// finished inside it. Why: a closed loop whose requests each take about as
// long as the window (naive batch100 on the hot account: 100 transfers in
// turn behind the other clients' row locks, ~1 s each) sees its clients
// finish in lockstep, so a fixed window holds either one round of
// completions or none; a rate measured from zero completions is no
// measurement. Extending the window until enough have finished keeps the
// rate an honest count over an honest (reported) duration.
type window struct {
	start       time.Time
	plannedEnd  time.Time
	minRequests int64

	mu       sync.Mutex
	end      time.Time // zero while the window is open
	finished int64     // requests finished inside the window so far
}

func newWindow(start, plannedEnd time.Time, minRequests int) *window {
	return &window{start: start, plannedEnd: plannedEnd, minRequests: int64(minRequests)}
}

// open reports whether clients should keep sending.
func (w *window) open() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.end.IsZero()
}

// finish records a request that finished at done and reports whether it
// counts (it finished inside the window). The lock makes "counts" and the
// closing instant agree: a request counts exactly when done < end.
func (w *window) finish(done time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if done.Before(w.start) || (!w.end.IsZero() && !done.Before(w.end)) {
		return false
	}
	w.finished++
	return true
}

// close waits until the window may close (plannedEnd passed and
// minRequests finished, or maxWindowExtension past plannedEnd), closes it
// and returns its end.
func (w *window) close(ctx context.Context) (time.Time, error) {
	const poll = 5 * time.Millisecond
	deadline := w.plannedEnd.Add(maxWindowExtension)
	timer := time.NewTimer(time.Until(w.plannedEnd))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			w.closeNow()
			return time.Time{}, ctx.Err()
		case <-timer.C:
		}
		w.mu.Lock()
		now := time.Now()
		if w.finished >= w.minRequests || !now.Before(deadline) {
			w.end = now
			w.mu.Unlock()
			return now, nil
		}
		w.mu.Unlock()
		timer.Reset(poll)
	}
}

func (w *window) closeNow() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.end.IsZero() {
		w.end = time.Now()
	}
}

// clientStats is one client's tally, merged after the clients stop.
type clientStats struct {
	hist      histogram
	requests  int64 // requests finished in the window
	committed int64 // transfers acknowledged in the window
	acked     int64 // transfers acknowledged over the whole run
	errors    int64 // transfers that failed over the whole run
	firstErr  string
}

func (s *clientStats) merge(o *clientStats) {
	s.hist.merge(&o.hist)
	s.requests += o.requests
	s.committed += o.committed
	s.acked += o.acked
	s.errors += o.errors
	if s.firstErr == "" {
		s.firstErr = o.firstErr
	}
}

// runClients runs n closed-loop clients until the window ends (or ctx does)
// and returns their merged tally. Client goroutines carry the pprof label
// ledgerbench=client, so a CPU profile splits client from server time.
func (l *load) runClients(ctx context.Context, n int) *clientStats {
	stats := make([]clientStats, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			pprof.Do(ctx, pprof.Labels("ledgerbench", "client"), func(ctx context.Context) {
				l.client(ctx, i, &stats[i])
			})
		})
	}
	wg.Wait()
	total := &clientStats{}
	for i := range stats {
		total.merge(&stats[i])
	}
	return total
}

func (l *load) client(ctx context.Context, id int, st *clientStats) {
	rng := rand.New(rand.NewPCG(l.seed, uint64(id)))
	var body []byte
	var tx client.Tx
	seq := 0
	for ctx.Err() == nil && l.measure.open() {
		if l.cl != nil {
			tx, seq = l.nextTx(rng, id, seq)
		} else {
			body, seq = l.appendBody(body[:0], rng, id, seq)
		}
		sent := time.Now()
		var failed int
		var err error
		if l.cl != nil {
			failed, err = l.transfer(ctx, tx)
		} else {
			failed, err = l.post(ctx, body)
		}
		done := time.Now()
		if err != nil && st.firstErr == "" {
			st.firstErr = err.Error()
		}
		st.errors += int64(failed)
		st.acked += int64(l.size - failed)
		if l.measure.finish(done) {
			st.hist.record(done.Sub(sent))
			st.requests++
			st.committed += int64(l.size - failed)
		}
	}
}

// appendBody appends the JSON of the next request: one transaction for
// single, {"transactions":[…]} for a batch. Keys are unique per run
// (client id, sequence number), so nothing is an idempotent replay.
func (l *load) appendBody(b []byte, rng *rand.Rand, id, seq int) ([]byte, int) {
	if l.size > 1 {
		b = append(b, `{"transactions":[`...)
	}
	for i := range l.size {
		if i > 0 {
			b = append(b, ',')
		}
		src, dst := l.work.pick(rng)
		b = append(b, `{"idempotency_key":"c`...)
		b = strconv.AppendInt(b, int64(id), 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(seq), 10)
		b = append(b, `","postings":[{"source":"`...)
		b = append(b, src...)
		b = append(b, `","destination":"`...)
		b = append(b, dst...)
		b = append(b, `","amount":"1","asset":"`+asset+`"}]}`...)
		seq++
	}
	if l.size > 1 {
		b = append(b, `]}`...)
	}
	return b, seq
}

// nextTx is the transfer of mode client, keyed like appendBody's.
func (l *load) nextTx(rng *rand.Rand, id, seq int) (client.Tx, int) {
	src, dst := l.work.pick(rng)
	key := "c" + strconv.Itoa(id) + "-" + strconv.Itoa(seq)
	return client.Tx{IdempotencyKey: key, Postings: []client.Posting{{Source: src, Destination: dst, Amount: "1", Asset: asset}}}, seq + 1
}

// transfer sends one transfer through the client (batched with the other
// clients' concurrent calls) and returns 1 if it failed.
func (l *load) transfer(ctx context.Context, tx client.Tx) (failed int, err error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := l.cl.Transfer(ctx, tx); err != nil {
		return 1, err
	}
	return 0, nil
}

// post sends one request and returns how many of its transfers failed,
// with the first failure's description.
func (l *load) post(ctx context.Context, body []byte) (failed int, err error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(body))
	if err != nil {
		return l.size, err
	}
	req.Header.Set("Authorization", l.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.hc.Do(req)
	if err != nil {
		return l.size, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return l.size, fmt.Errorf("read answer: %w", err)
	}
	want := http.StatusCreated
	if l.size > 1 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return l.size, fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(data))
	}
	if l.size == 1 || !bytes.Contains(data, []byte(`"error"`)) {
		return 0, nil // no item of a batch answer failed: none says "error"
	}
	return itemErrors(data, l.size)
}

// itemErrors counts the failed items of a batch answer.
func itemErrors(data []byte, size int) (int, error) {
	var out struct {
		Results []struct {
			Error json.RawMessage `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return size, fmt.Errorf("decode batch answer: %w", err)
	}
	if len(out.Results) != size {
		return size, fmt.Errorf("batch answer has %d results for %d transfers", len(out.Results), size)
	}
	failed, first := 0, ""
	for _, r := range out.Results {
		if r.Error != nil {
			if failed++; first == "" {
				first = snippet(r.Error)
			}
		}
	}
	if failed == 0 {
		return 0, nil
	}
	return failed, errors.New("batch item: " + first)
}

func snippet(b []byte) string {
	const maxSnippet = 300
	if len(b) > maxSnippet {
		return string(b[:maxSnippet]) + "…"
	}
	return string(bytes.TrimSpace(b))
}

// newHTTPClient keeps one idle connection per client so that the closed
// loop never reconnects (no TIME_WAIT churn), and ignores proxy settings:
// the server is on loopback.
func newHTTPClient(clients int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          clients + 4,
		MaxIdleConnsPerHost:   clients + 4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
		DisableCompression:    true,
	}}
}
