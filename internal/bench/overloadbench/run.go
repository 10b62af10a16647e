// Package overloadbench is the overload benchmark behind `bulwark bench
// overload`: it starts an HTTP server on loopback whose backend has a fixed
// capacity (BackendConcurrency slots held for ServiceTime each), measures
// that capacity, then offers multiples of it with a mix of classes at a
// constant arrival rate, first with admission control on and then off, and
// reports success rate, goodput and latency per class.
//
// The generator runs in the same process and shares the cores with the
// server, so it measures itself too: per phase, the intended and sent
// rates and the lag of its sends behind schedule. A phase whose lag p99
// exceeds MaxGeneratorLag is marked "generator behind", and a miss there is
// reported as inconclusive rather than as the server's. With the
// environment variable BULWARK_OVERLOAD_TRACE=FILE, Run writes the
// controller's Stats and the generator's counters to FILE every 100 ms.
//
// A run takes about 70 s with the defaults and about 15 s with Quick.
// Everything it starts (server, generator goroutines, connections) is
// stopped before Run returns. Traffic goes to 127.0.0.1 only.
package overloadbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/admission"
)

// Run executes the benchmark, prints progress and the tables to out, and
// returns the report. It stops early, with an error, when ctx ends.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rules, err := admission.ParseRules([]byte(cfg.Rules))
	if err != nil {
		return nil, fmt.Errorf("overload bench: %w", err)
	}
	ctl, err := admission.New(cfg.Admission)
	if err != nil {
		return nil, fmt.Errorf("overload bench: %w", err)
	}
	ctl.SetRules(rules)
	srv, err := startServer(cfg, ctl)
	if err != nil {
		return nil, fmt.Errorf("overload bench: %w", err)
	}
	ld := newLoad(cfg, srv.addr)
	tr := startTrace(srv, ld)
	rep, err := runPhases(ctx, cfg, srv, ld, out, tr)
	tr.close()
	ld.close()
	if cerr := srv.close(); err == nil && cerr != nil {
		err = fmt.Errorf("overload bench: stop server: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	rep.evaluate(cfg)
	rep.Print(out)
	return rep, nil
}

func runPhases(ctx context.Context, cfg Config, srv *server, ld *load, out io.Writer, tr *tracer) (*Report, error) {
	settle := cfg.RequestTimeout + time.Second
	rep := &Report{UnloadedP99Ms: map[string]float64{}, CPUs: runtime.NumCPU(), LoadAverage: [2]float64{loadAverage()}}
	defer func() { rep.LoadAverage[1] = loadAverage() }()

	srv.on.Store(false)
	rep.CapacityPerSec = ld.closedLoop(ctx, 4*cfg.BackendConcurrency, cfg.CapacityDuration, 0)
	srv.settle(settle)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if rep.CapacityPerSec <= 0 {
		return nil, fmt.Errorf("overload bench: measured no capacity")
	}
	fmt.Fprintf(out, "# capacity %.0f req/s (%d slots × %v: %.0f nominal)\n", rep.CapacityPerSec,
		cfg.BackendConcurrency, cfg.ServiceTime, float64(cfg.BackendConcurrency)/cfg.ServiceTime.Seconds())

	srv.on.Store(true)
	unloaded := cfg
	unloaded.PhaseDuration, unloaded.Warmup = cfg.UnloadedDuration, cfg.UnloadedDuration/5
	samples := ld.openLoop(ctx, cfg.UnloadedFactor*rep.CapacityPerSec, unloaded.PhaseDuration, unloaded.Warmup, 1)
	var all []time.Duration
	for ci, cl := range cfg.Classes {
		var lat []time.Duration
		for _, s := range samples {
			if s.kind == succeeded && int(s.class) == ci {
				lat = append(lat, s.latency)
			}
		}
		rep.UnloadedP99Ms[cl.Name] = percentileMs(lat, 0.99)
		all = append(all, lat...)
	}
	rep.UnloadedP99Ms[allClasses] = percentileMs(all, 0.99)
	srv.settle(settle)
	fmt.Fprintf(out, "# unloaded p99 ms at %g× capacity: %v\n", cfg.UnloadedFactor, rep.UnloadedP99Ms)

	seed := uint64(2)
	for _, mode := range []string{"on", "off"} {
		srv.on.Store(mode == "on")
		for _, lf := range cfg.LoadFactors {
			srv.takeRejects()
			tr.setPhase(fmt.Sprintf("%s%g", mode, lf))
			rate := lf * rep.CapacityPerSec
			samples := ld.openLoop(ctx, rate, cfg.PhaseDuration, cfg.Warmup, seed)
			seed++
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			rep.addPhase(cfg, mode, lf, rate, samples)
			t := &rep.Totals[len(rep.Totals)-1]
			t.RejectServerP99Ms = percentileMs(srv.takeRejects(), 0.99)
			fmt.Fprintf(out, "# admission %s %g×: offered %.0f/s goodput %.0f/s; generator lag p99 %.2f ms; controller %+v\n",
				mode, lf, t.OfferedPerSec, t.GoodputPerSec, t.GeneratorLagP99Ms, srv.ctl.Stats())
			tr.setPhase("settle")
			srv.settle(settle)
		}
	}
	return rep, nil
}

// loadAverage is the 1-minute load average of the machine (Linux; 0
// elsewhere). The generator and the server share the machine's cores, so
// the report records how busy they were.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
