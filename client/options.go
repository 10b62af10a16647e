package client

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Defaults and limits of the options.
const (
	// DefaultTimeout bounds one HTTP attempt.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxAttempts is the attempts of one call, the first included.
	DefaultMaxAttempts = 5
	// DefaultMaxElapsed bounds a call with its retries and backoff.
	DefaultMaxElapsed = 30 * time.Second
	// DefaultLinger is how long the batcher waits for more transfers after
	// the first of a batch. Callers that wait for their answer before
	// sending again (a closed loop) lose the linger on every call, and the
	// server adds its own batch window (500 µs) anyway: 200 µs still
	// gathers the callers that arrive within a scheduling round (32 closed-
	// loop goroutines: ~17 per request) and measured ~30% more transfers/s
	// than 1 ms (bulwark bench ledger, mode client, docs/client.md).
	DefaultLinger = 200 * time.Microsecond
	// DefaultMaxBatchItems is the most transfers of one automatic batch:
	// the server's limit, 8,190 × ~1 KiB < 8 MiB.
	DefaultMaxBatchItems = MaxBatch
	// DefaultInFlightBatches is how many automatic batches may be on the
	// wire at once; the batcher keeps gathering while they are.
	DefaultInFlightBatches = 4

	maxAttemptsLimit = 100
	maxElapsedLimit  = time.Hour
	maxLingerLimit   = time.Second
	maxInFlightLimit = 256
)

// Option configures a Client.
type Option func(*config)

type config struct {
	hc          *http.Client
	timeout     time.Duration
	maxAttempts int
	maxElapsed  time.Duration
	batching    bool
	batchItems  int
	linger      time.Duration
	inFlight    int
	batchingSet int // how many of WithBatching/WithoutBatching were given
	claims      Claims
	errs        []error
}

func defaults() config {
	return config{
		timeout: DefaultTimeout, maxAttempts: DefaultMaxAttempts, maxElapsed: DefaultMaxElapsed,
		batching: true, batchItems: DefaultMaxBatchItems, linger: DefaultLinger, inFlight: DefaultInFlightBatches,
	}
}

// WithHTTPClient sends the requests through hc (its Transport's pooling
// and TLS settings apply). Its Timeout, if any, bounds every attempt on
// top of WithTimeout. Default: a client with keep-alive connections, 64
// idle per host.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) {
		if hc == nil {
			c.errs = append(c.errs, errors.New("WithHTTPClient: nil client"))
		}
		c.hc = hc
	}
}

// WithTimeout bounds one HTTP attempt (connect, send, answer). Default
// DefaultTimeout; at most an hour.
func WithTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 || d > maxElapsedLimit {
			c.errs = append(c.errs, fmt.Errorf("WithTimeout(%s): want more than 0, at most %s", d, maxElapsedLimit))
		}
		c.timeout = d
	}
}

// WithRetry bounds the retries of a call: at most maxAttempts attempts (1
// disables retries; at most 100) and maxElapsed from the first attempt to
// the start of the last (at most an hour). Default 5 attempts, 30 s.
func WithRetry(maxAttempts int, maxElapsed time.Duration) Option {
	return func(c *config) {
		if maxAttempts < 1 || maxAttempts > maxAttemptsLimit {
			c.errs = append(c.errs, fmt.Errorf("WithRetry: %d attempts, want 1 to %d", maxAttempts, maxAttemptsLimit))
		}
		if maxElapsed <= 0 || maxElapsed > maxElapsedLimit {
			c.errs = append(c.errs, fmt.Errorf("WithRetry: max elapsed %s, want more than 0, at most %s", maxElapsed, maxElapsedLimit))
		}
		c.maxAttempts, c.maxElapsed = maxAttempts, maxElapsed
	}
}

// WithBatching tunes automatic batching: Transfer calls are gathered into
// batches of at most maxItems (1 to MaxBatch) transfers, sent linger (more
// than 0, at most 1 s) after the first transfer of a batch arrived, or as
// soon as maxItems are gathered. Default DefaultMaxBatchItems,
// DefaultLinger.
func WithBatching(maxItems int, linger time.Duration) Option {
	return func(c *config) {
		if maxItems < 1 || maxItems > MaxBatch {
			c.errs = append(c.errs, fmt.Errorf("WithBatching: %d items, want 1 to %d", maxItems, MaxBatch))
		}
		if linger <= 0 || linger > maxLingerLimit {
			c.errs = append(c.errs, fmt.Errorf("WithBatching: linger %s, want more than 0, at most %s", linger, maxLingerLimit))
		}
		c.batching, c.batchItems, c.linger = true, maxItems, linger
		c.batchingSet++
	}
}

// WithoutBatching sends every Transfer as its own request.
func WithoutBatching() Option {
	return func(c *config) {
		c.batching = false
		c.batchingSet++
	}
}

// WithInFlightBatches bounds the automatic batches on the wire at once (1
// to 256; default DefaultInFlightBatches). When all are in flight, the
// batcher keeps gathering, up to its item limit, and then waits.
func WithInFlightBatches(n int) Option {
	return func(c *config) {
		if n < 1 || n > maxInFlightLimit {
			c.errs = append(c.errs, fmt.Errorf("WithInFlightBatches(%d): want 1 to %d", n, maxInFlightLimit))
		}
		c.inFlight = n
	}
}

func (c *config) validate() error {
	errs := c.errs
	if c.batchingSet > 1 {
		errs = append(errs, errors.New("give at most one of WithBatching and WithoutBatching"))
	}
	return errors.Join(errs...)
}

// defaultHTTPClient reuses connections: one per concurrent request, kept
// idle up to 64 per host (the batcher needs few; direct calls from many
// goroutines need more).
func defaultHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: DefaultTimeout,
		ForceAttemptHTTP2:     true,
	}}
}
