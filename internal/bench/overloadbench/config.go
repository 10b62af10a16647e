package overloadbench

import (
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/admission"
)

// Class is one kind of traffic the generator offers.
type Class struct {
	Name    string  // row label in the report, for example "payments"
	Share   float64 // fraction of the offered requests; the shares add up to 1
	Route   string  // request path without the slash; classified as the route
	Traffic string  // claimed traffic type header ("" for none)
}

// DefaultClasses: payments at the highest level, ordinary reads, crawlers
// at the lowest. Payments are 5%, not the 20% of the example: the
// highest level is never shed, so its own demand must fit the backend at
// the highest load factor (5% × 10 = half the capacity), or no admission
// policy can keep its latency.
var DefaultClasses = []Class{
	{Name: "payments", Share: 0.05, Route: "payments"},
	{Name: "reads", Share: 0.60, Route: "reads", Traffic: "normal"},
	{Name: "crawler", Share: 0.35, Route: "reads", Traffic: "crawler"},
}

// Rules classifies the default classes: payments "critical", reads
// "normal", crawlers "low".
const Rules = `# bulwark admission rules v1
level critical 100
level normal 0
level low
route payments 100
traffic crawler -50
`

// Config describes one bench run. Zero fields take the defaults in
// brackets; Quick changes the defaults of the durations to a ~10 s run.
type Config struct {
	// BackendConcurrency is the number of requests the limited backend
	// serves at once; the rest wait in its FIFO queue. [16]
	BackendConcurrency int
	// ServiceTime is how long the backend holds a slot per request.
	// Capacity is BackendConcurrency / ServiceTime. [40 ms: 400/s, so that
	// 10× is 4,000 requests a second, which the generator and the server
	// sustain together on 2 shared cores]
	ServiceTime time.Duration
	// LoadFactors are the multiples of the measured capacity offered, in
	// order, first with admission control on and then off. [1, 2, 5, 10]
	LoadFactors []float64
	// Classes of the offered traffic. [DefaultClasses] The first class is
	// the one the checks treat as top priority.
	Classes []Class
	// Rules classify the classes (admission.ParseRules). [Rules]
	Rules string

	// PhaseDuration is how long each load factor is offered. [6 s; Quick 1.2 s]
	PhaseDuration time.Duration
	// Warmup is the start of each phase left out of the statistics, so
	// that they show the steady state. [1 s; Quick 0.4 s]
	Warmup time.Duration
	// CapacityDuration is how long the capacity is measured, closed loop.
	// [3 s; Quick 1 s]
	CapacityDuration time.Duration
	// UnloadedDuration is how long the unloaded latency is measured, at
	// UnloadedFactor of capacity. [3 s; Quick 1 s]
	UnloadedDuration time.Duration
	// UnloadedFactor is the load of the unloaded phase. [0.2]
	UnloadedFactor float64
	// Quick selects the short durations.
	Quick bool

	// RequestTimeout is the server's deadline per request: past it the
	// request is answered 504 and counts as failed. [1 s = 25 ×
	// ServiceTime, a patient client]
	RequestTimeout time.Duration
	// MaxOutstanding bounds the generator's requests due and not ended
	// (waiting for a connection or in flight); a request due while it is
	// full is not sent and counts as failed. [5,000]
	MaxOutstanding int

	// MaxConns bounds the generator's keep-alive connections to the
	// server, one worker and one request at a time each (see load). A
	// request due while all are busy waits for one, in order, and that
	// wait counts in its latency: like the connection pool of a proxy in
	// front of the server, it keeps the generator from a storm of new
	// connections whose SYNs overflow the listen backlog (1 s
	// retransmits), which would measure the kernel, not admission control.
	// [512]
	MaxConns int
	// MaxGeneratorLag is the generator lag p99 (due time to write, with a
	// connection free) above which a phase is marked GeneratorBehind and
	// its misses inconclusive. [10 ms]
	MaxGeneratorLag time.Duration

	// Admission configures the controller of the "on" runs.
	// [admission.Config{} with MinLimit 2]
	Admission admission.Config
}

func (c Config) withDefaults() Config {
	if c.BackendConcurrency == 0 {
		c.BackendConcurrency = 16
	}
	if c.ServiceTime == 0 {
		c.ServiceTime = 40 * time.Millisecond
	}
	if c.LoadFactors == nil {
		c.LoadFactors = []float64{1, 2, 5, 10}
	}
	if c.Classes == nil {
		c.Classes = DefaultClasses
	}
	if c.Rules == "" {
		c.Rules = Rules
	}
	quick := func(full, short time.Duration) time.Duration {
		if c.Quick {
			return short
		}
		return full
	}
	if c.PhaseDuration == 0 {
		c.PhaseDuration = quick(6*time.Second, 1200*time.Millisecond)
	}
	if c.Warmup == 0 {
		c.Warmup = quick(time.Second, 400*time.Millisecond)
	}
	if c.CapacityDuration == 0 {
		c.CapacityDuration = quick(3*time.Second, time.Second)
	}
	if c.UnloadedDuration == 0 {
		c.UnloadedDuration = quick(3*time.Second, time.Second)
	}
	if c.UnloadedFactor == 0 {
		c.UnloadedFactor = 0.2
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = time.Second
	}
	if c.MaxOutstanding == 0 {
		c.MaxOutstanding = 5000
	}
	if c.MaxConns == 0 {
		c.MaxConns = 512
	}
	if c.MaxGeneratorLag == 0 {
		c.MaxGeneratorLag = 10 * time.Millisecond
	}
	if c.Admission.MinLimit == 0 {
		c.Admission.MinLimit = 2
	}
	return c
}

// maxPhaseRequests bounds the samples one phase keeps (8 bytes each):
// 10 × 400/s × 6 s = 24,000 by default; 4 M is 32 MiB.
const maxPhaseRequests = 4 << 20

func (c Config) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.BackendConcurrency < 1, "BackendConcurrency %d: want ≥ 1", c.BackendConcurrency)
	check(c.ServiceTime <= 0, "ServiceTime %v: want > 0", c.ServiceTime)
	check(len(c.LoadFactors) == 0, "LoadFactors: want at least one")
	for _, f := range c.LoadFactors {
		check(f <= 0, "load factor %g: want > 0", f)
	}
	check(len(c.Classes) == 0, "Classes: want at least one")
	sum := 0.0
	for _, cl := range c.Classes {
		check(cl.Share <= 0 || cl.Name == "" || cl.Route == "", "class %+v: want a name, a route and a share > 0", cl)
		sum += cl.Share
	}
	check(sum < 0.999 || sum > 1.001, "class shares add up to %g: want 1", sum)
	check(c.Warmup >= c.PhaseDuration, "Warmup %v: want < PhaseDuration %v", c.Warmup, c.PhaseDuration)
	check(c.RequestTimeout <= c.ServiceTime, "RequestTimeout %v: want > ServiceTime %v", c.RequestTimeout, c.ServiceTime)
	check(c.MaxOutstanding < 1, "MaxOutstanding %d: want ≥ 1", c.MaxOutstanding)
	check(c.MaxConns < 1, "MaxConns %d: want ≥ 1", c.MaxConns)
	check(c.UnloadedFactor <= 0 || c.UnloadedFactor >= 1, "UnloadedFactor %g: want within (0, 1)", c.UnloadedFactor)
	if len(errs) > 0 {
		return fmt.Errorf("overload bench config: %w", errors.Join(errs...))
	}
	return nil
}
