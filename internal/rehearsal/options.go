package rehearsal

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"time"
)

// Config of one rehearsal. Zero fields take the default in brackets
// (EnsureDefaults); Validate refuses contradictions.
type Config struct {
	// URL of the Bulwark to rehearse against (http or https).
	URL string
	// AdminKey creates a tenant, its key and its accounts for the run,
	// lifts the tenant's request quota (so that capacity measures the
	// server, not the default 1,000/s quota), and applies Preset. The key
	// is revoked at the end; the tenant stays (there is no tenant delete).
	AdminKey string
	// Keys are tenant keys to load instead (when AdminKey is empty),
	// taken in turn by the arrivals: the tenants' settings apply as they
	// are, and accounts load-0 … load-N-1 (asset LOAD, scale 0, rule none)
	// are created in each key's tenant, or reused when they exist with
	// those attributes. Batch and crawler claims need the keys to be
	// entitled to them, else admission treats them as normal. At most
	// maxKeys.
	Keys []string
	// Mix of classes. [payments=70, reads=25, crawler=5]
	Mix []Share
	// Accounts the payments and reads spread over. [16]
	Accounts int

	// StartRate is the first rate of the capacity search, per second. [25]
	StartRate float64
	// MaxRate bounds the capacity search, per second. [10,000]
	MaxRate float64
	// StepDuration is how long each rate of the search is offered. [2 s]
	StepDuration time.Duration
	// CapacityP99 and CapacityErrorRate are the top class's objectives
	// during the search: a rate is good while payments' p99 is at most
	// CapacityP99 and their share of arrivals not achieved is at most
	// CapacityErrorRate. [100 ms, 0.01]
	CapacityP99       time.Duration
	CapacityErrorRate float64

	// Factors are the multiples of the capacity held, in order. [1, 2, 4, 10]
	// 1 must be among them: it is the baseline of the p99 objective.
	Factors []float64
	// StageDuration is how long each factor is held. [5 s]
	StageDuration time.Duration
	// Preset, when set, is applied to the run's tenant before the stage
	// of factor PresetAt and reverted after it. Needs AdminKey.
	Preset   string
	PresetAt float64

	// Objectives of the verdict, checked at each factor of At [4]: payments
	// success rate at least Success [1.0], and payments p99 at most
	// P99Ratio [2] × their p99 at 1×.
	At       []float64
	Success  float64
	P99Ratio float64

	// MaxInFlight bounds the requests outstanding; an arrival due while
	// it is reached is dropped. [2,000: well above what the server
	// admits at once, so that the server's admission control, not this
	// bound, meets the surge (with 256, measured on 2 cores, the
	// generator capped the concurrency and the server never shed)]
	MaxInFlight int
	// RequestTimeout bounds one request; past it the request is an error.
	// [5 s]
	RequestTimeout time.Duration
	// Seed of the class choice. [1]
	Seed uint64
	// Progress receives a line a second while load runs (nil: none).
	Progress io.Writer
}

// Bounds of a run: a rehearsal is bounded in time and in count.
const (
	// maxRateLimit: 100,000 arrivals a second is far beyond what one
	// generator process sends with a goroutine per request.
	maxRateLimit = 100_000
	// maxStageDuration × (search steps + stages) bounds a run's time:
	// 10 min × (17 + 8) at the very most.
	maxStageDuration = 10 * time.Minute
	maxFactors       = 8
	maxInFlightLimit = 10_000
	maxAccounts      = 1_000
	maxKeys          = 64
	// maxSamples bounds the latencies kept per stage and class (8 B each,
	// 8 MiB): percentiles are over the first maxSamples successes.
	maxSamples = 1 << 20
)

// EnsureDefaults fills in the zero fields.
func (c *Config) EnsureDefaults() {
	if c.Mix == nil {
		c.Mix = []Share{{ClassPayments, 70}, {"reads", 25}, {"crawler", 5}}
	}
	setF := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	setF(&c.StartRate, 25)
	setF(&c.MaxRate, 10_000)
	setF(&c.CapacityErrorRate, 0.01)
	setF(&c.Success, 1)
	setF(&c.P99Ratio, 2)
	setD(&c.StepDuration, 2*time.Second)
	setD(&c.StageDuration, 5*time.Second)
	setD(&c.CapacityP99, 100*time.Millisecond)
	setD(&c.RequestTimeout, 5*time.Second)
	if c.Accounts == 0 {
		c.Accounts = 16
	}
	if c.Factors == nil {
		c.Factors = []float64{1, 2, 4, 10}
	}
	if c.At == nil {
		c.At = []float64{4}
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 2000
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
}

// Validate reports every contradiction at once, wrapped in ErrBadInput.
func (c *Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	u, err := url.Parse(c.URL)
	check(err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "", "URL %q: want http(s)://host[:port]", c.URL)
	check((c.AdminKey == "") == (len(c.Keys) == 0), "give either an admin key or tenant keys")
	check(len(c.Keys) > maxKeys, "%d tenant keys: want at most %d", len(c.Keys), maxKeys)
	if err := validateMix(c.Mix); err != nil {
		errs = append(errs, err)
	}
	check(c.Accounts < 2 || c.Accounts > maxAccounts, "accounts %d: want 2 to %d", c.Accounts, maxAccounts)
	check(!(c.StartRate > 0 && c.StartRate <= c.MaxRate), "start rate %g: want more than 0, at most the max rate %g", c.StartRate, c.MaxRate)
	check(!(c.MaxRate <= maxRateLimit), "max rate %g: want at most %d", c.MaxRate, maxRateLimit)
	for _, d := range []time.Duration{c.StepDuration, c.StageDuration} {
		check(d < 100*time.Millisecond || d > maxStageDuration, "duration %s: want 100ms to %s", d, maxStageDuration)
	}
	check(c.CapacityP99 <= 0, "capacity p99 %s: want more than 0", c.CapacityP99)
	check(!(c.CapacityErrorRate >= 0 && c.CapacityErrorRate < 1), "capacity error rate %g: want 0 to less than 1", c.CapacityErrorRate)
	check(len(c.Factors) == 0 || len(c.Factors) > maxFactors, "factors: %d; want 1 to %d", len(c.Factors), maxFactors)
	for _, f := range c.Factors {
		check(!(f > 0 && f <= 1000), "factor %g: want more than 0, at most 1000", f)
	}
	check(!slices.Contains(c.Factors, 1), "factors %v: want 1 among them (the baseline of the p99 objective)", c.Factors)
	check(c.Preset != "" && c.AdminKey == "", "preset %s: needs the admin key", c.Preset)
	check(c.Preset != "" && !slices.Contains(c.Factors, c.PresetAt), "preset at %g: not one of the factors %v", c.PresetAt, c.Factors)
	check(len(c.At) == 0, "objectives: want at least one factor to judge")
	for _, a := range c.At {
		check(!slices.Contains(c.Factors, a), "objective at %g: not one of the factors %v", a, c.Factors)
	}
	check(!(c.Success > 0 && c.Success <= 1), "objective success %g: want more than 0, at most 1", c.Success)
	check(!(c.P99Ratio > 0 && c.P99Ratio <= 1000), "objective p99 ratio %g: want more than 0, at most 1000", c.P99Ratio)
	check(c.MaxInFlight < 1 || c.MaxInFlight > maxInFlightLimit, "max in flight %d: want 1 to %d", c.MaxInFlight, maxInFlightLimit)
	check(c.RequestTimeout <= 0 || c.RequestTimeout > time.Minute, "request timeout %s: want more than 0, at most 1m", c.RequestTimeout)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrBadInput, errors.Join(errs...))
	}
	return nil
}
