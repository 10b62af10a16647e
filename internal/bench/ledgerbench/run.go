package ledgerbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
)

// Run measures every mode × request type of cfg.Workload, each on a fresh
// database, printing progress and then the table to out. It blocks for
// about len(Modes) × len(Requests) × (Warmup + Duration + a few seconds of
// setup). The first run that fails to run stops the benchmark; the report
// holds the runs done so far. Missed targets are not errors.
func Run(ctx context.Context, cfg Config, out io.Writer) (rep *Report, err error) {
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	adminURL, stop, err := openServer(ctx, cfg.PostgresURL)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, stop()) }()
	work := newWorkload(cfg.Workload)
	rep = &Report{Seed: cfg.Seed, Results: []Result{}}
	fmt.Fprintf(out, "ledger bench: workload %s (%d accounts), %d clients, %s measured after %s warm-up, seed %d\n",
		cfg.Workload, len(work.accounts), cfg.Clients, cfg.Duration, cfg.Warmup, cfg.Seed)
	for _, mode := range cfg.Modes {
		for _, request := range cfg.Requests {
			if mode == ModeClient && request != RequestSingle {
				continue
			}
			began := time.Now()
			run := runOne
			if mode == ModeFloor {
				run = func(ctx context.Context, cfg *Config, adminURL string, work *workload, _, request string) (Result, error) {
					return runFloor(ctx, cfg, adminURL, work, request)
				}
			}
			res, err := run(ctx, &cfg, adminURL, work, mode, request)
			if err != nil {
				return rep, fmt.Errorf("%s %s: %w", mode, request, err)
			}
			rep.Results = append(rep.Results, res)
			fmt.Fprintf(out, "  %s %s: done in %.1fs\n", mode, request, time.Since(began).Seconds())
		}
	}
	return rep, rep.WriteTable(out)
}

// runOne is one mode and request type on its own database and server.
func runOne(ctx context.Context, cfg *Config, adminURL string, work *workload, mode, request string) (res Result, err error) {
	name := fmt.Sprintf("bench_%s_%s_%s_%d", cfg.Workload, mode, request, time.Now().UnixNano())
	pc := cfg.Pipeline
	pc.Naive = mode == ModeNaive
	t, err := startTarget(ctx, adminURL, name, pc, cfg.Logger)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, t.close()) }()
	hc := newHTTPClient(cfg.Clients)
	defer hc.CloseIdleConnections()
	key, err := t.setup(ctx, hc, work)
	if err != nil {
		return res, err
	}
	l := &load{hc: hc, url: t.baseURL + "/v1/transactions", auth: "Bearer " + key, size: 1, work: work, seed: cfg.Seed}
	if request == RequestBatch100 {
		l.url, l.size = t.baseURL+"/v1/transactions/batch", batchSize
	}
	if mode == ModeClient {
		// Default batching (up to 8,190 transfers, 200 µs linger) and retries.
		if l.cl, err = client.New(t.baseURL, key, client.WithHTTPClient(hc), client.WithTimeout(requestTimeout)); err != nil {
			return res, err
		}
		defer l.cl.Close()
	}
	m, err := measure(ctx, cfg, t, l)
	if err != nil {
		return res, err
	}
	if err := t.stopServer(); err != nil {
		return res, err
	}
	violations, err := t.check(ctx, m.stats.acked)
	if err != nil {
		return res, err
	}
	return m.result(cfg, mode, request, violations), nil
}

// measurement is what one run observed inside its window.
type measurement struct {
	stats  *clientStats
	pipe   pipelineStats // counters' increase over the window
	cpu    time.Duration // this process's CPU time over the window
	window time.Duration // the window's actual length (see window)
}

// minWindowRequests is the fewest requests per client a window must see
// finish before it closes (see window): one round of the closed loop.
const minWindowRequests = 1

// measure runs the clients for Warmup + Duration (longer when the window
// must wait for its minimum of completed requests) and samples the
// server's pipeline counters and this process's CPU time at both ends of
// the window.
func measure(ctx context.Context, cfg *Config, t *target, l *load) (measurement, error) {
	now := time.Now()
	start := now.Add(cfg.Warmup)
	l.measure = newWindow(start, start.Add(cfg.Duration), minWindowRequests*cfg.Clients)
	statsc := make(chan *clientStats, 1)
	go func() { statsc <- l.runClients(ctx, cfg.Clients) }()
	p0, cpu0, err0 := sampleAt(ctx, t, l.hc, start)
	end, errEnd := l.measure.close(ctx)
	cpu1 := processCPU()
	p1, err1 := t.scrape(ctx, l.hc)
	m := measurement{stats: <-statsc, cpu: cpu1 - cpu0, window: end.Sub(start), pipe: pipelineStats{
		batches:      p1.batches - p0.batches,
		transactions: p1.transactions - p0.transactions,
		seconds:      p1.seconds - p0.seconds,
	}}
	if err := errors.Join(err0, errEnd, err1, ctx.Err()); err != nil {
		return m, err
	}
	return m, nil
}

func sampleAt(ctx context.Context, t *target, hc *http.Client, at time.Time) (pipelineStats, time.Duration, error) {
	timer := time.NewTimer(time.Until(at))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return pipelineStats{}, 0, ctx.Err()
	case <-timer.C:
	}
	cpu := processCPU()
	p, err := t.scrape(ctx, hc)
	return p, cpu, err
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
