// Package featurebench measures the velocity features engine (issue 9) on
// this machine, every figure in one run against the same database:
//
//   - ingest: events per second from the events topic to the engine's
//     committed state (tiles and positions in PostgreSQL), against a naive
//     baseline (one transaction per event updating one row per feature per
//     window) and against the consume-only rate of the same topic (a
//     franz-go consumer group reading the records and doing nothing: the
//     upper bound);
//   - reads: p50/p99 of GET /v1/features/{type}/{id} and of POST
//     /v1/features/evaluate at a fixed request rate (open model) while
//     the engine ingests at half its measured maximum, fed the way that
//     maximum was measured (records produced to the events topic; with
//     ReadIngest "http", through POST /v1/events instead);
//   - freshness: from an event's 202 to its visibility in a read;
//   - memory of the serving process (RSS, RSS delta per tracked entity);
//   - pause_effective_ms: from setting tasks.agg_backfill.rate_per_partition
//     to 0 until a running backfill stops progressing.
//
// The server is a real `bulwark serve --roles api,features` child process
// (so that its memory is its own) on an embedded broker run by the
// benchmark. It is a program, not a test: it prints targets with
// PASS/MISS and never fails because the machine is slow. docs/features.md
// (section Benchmark) describes the method and the figures.
package featurebench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Defaults of Config (the workload of issue 9).
const (
	DefaultEntities      = 100_000
	DefaultEvents        = 300_000
	DefaultZipfS         = 1.1
	DefaultZipfV         = 1.0
	DefaultDuration      = 20 * time.Second
	DefaultReadRate      = 200
	DefaultProbeRate     = 10
	DefaultNaiveDuration = 10 * time.Second
	DefaultNaiveClients  = 8
)

// Config of a run.
type Config struct {
	// PostgresURL is an empty database the benchmark and its server use.
	// Required.
	PostgresURL string
	// Dir holds the embedded broker's log and the server's data directory.
	// Required.
	Dir string
	// Serve is the command that runs `bulwark serve` (the binary and the
	// word serve); the benchmark appends the flags. Required.
	Serve []string
	// ServeEnv is added to the server's environment.
	ServeEnv []string
	// ServerProfile, when set, is a file to write a CPU profile of the
	// server to, taken over the read phase under ingest, and FILE.ingest
	// one over the engine's ingest (the server runs with --debug-addr on a
	// free loopback port).
	ServerProfile string
	// ServerLog receives the server's stderr; nil discards it.
	ServerLog io.Writer
	// Entities is the number of distinct entities (cards) the events draw
	// from, Zipf-distributed; default 100,000.
	Entities int
	// Events is the ingest backlog; default 300,000.
	Events int
	// ZipfS and ZipfV are the parameters of math/rand/v2's Zipf: rank k
	// (0-based) is drawn with probability proportional to (v + k)^-s.
	// Defaults 1.1 and 1.
	ZipfS, ZipfV float64
	// Duration of the read phase (reads, evaluate and freshness probes
	// while ingest runs at half its maximum); default 20 s.
	Duration time.Duration
	// ReadRate is the rate of GET reads per second, and also that of
	// evaluate calls; default 200 each.
	ReadRate float64
	// ProbeRate is the rate of freshness probes per second; default 10.
	ProbeRate float64
	// ReadIngest is how the read phase's events arrive: "topic" (default)
	// produces them to the events topic, as the ingest maximum was
	// measured, so that the engine runs at half its maximum; "http" sends
	// them through POST /v1/events, whose own cost (decode, produce with
	// acks) then shares the machine too: on 2 cores that path takes fewer
	// events per second than the engine, and the phase becomes an overload
	// test.
	ReadIngest string
	// NaiveDuration bounds the naive baseline's run; default 10 s.
	NaiveDuration time.Duration
	// NaiveClients is the naive baseline's concurrent writers (entities are
	// split among them by hash, as partitions would); default 8.
	NaiveClients int
	// Parallelism, when positive, sets features.consumer_parallelism (the
	// partitions the server applies at once; global setting, default 4)
	// before the run.
	Parallelism int
	// Seed of the workload; default 1.
	Seed uint64
	Log  *slog.Logger
}

// How the read phase's events arrive (Config.ReadIngest).
const (
	ReadIngestTopic = "topic"
	ReadIngestHTTP  = "http"
)

func (c *Config) ensureDefaults() {
	if c.Entities == 0 {
		c.Entities = DefaultEntities
	}
	if c.Events == 0 {
		c.Events = DefaultEvents
	}
	if c.ZipfS == 0 {
		c.ZipfS = DefaultZipfS
	}
	if c.ZipfV == 0 {
		c.ZipfV = DefaultZipfV
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.ReadRate == 0 {
		c.ReadRate = DefaultReadRate
	}
	if c.ProbeRate == 0 {
		c.ProbeRate = DefaultProbeRate
	}
	if c.ReadIngest == "" {
		c.ReadIngest = ReadIngestTopic
	}
	if c.NaiveDuration == 0 {
		c.NaiveDuration = DefaultNaiveDuration
	}
	if c.NaiveClients == 0 {
		c.NaiveClients = DefaultNaiveClients
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	switch {
	case c.PostgresURL == "" || c.Dir == "" || len(c.Serve) == 0:
		return errors.New("featurebench: PostgresURL, Dir and Serve are required")
	case c.Entities < 1 || c.Entities > 100_000_000:
		return fmt.Errorf("featurebench: entities %d outside [1, 1e8]", c.Entities)
	case c.Events < 100 || c.Events > 100_000_000:
		return fmt.Errorf("featurebench: events %d outside [100, 1e8]", c.Events)
	case c.ZipfS <= 1 || c.ZipfV < 1:
		return fmt.Errorf("featurebench: zipf s %g must be > 1 and v %g >= 1", c.ZipfS, c.ZipfV)
	case c.Duration < time.Second:
		return fmt.Errorf("featurebench: duration %v under 1 s", c.Duration)
	case c.ReadRate <= 0 || c.ReadRate > 100_000 || c.ProbeRate <= 0 || c.ProbeRate > 1000:
		return fmt.Errorf("featurebench: read rate %g must be in (0, 1e5], probe rate %g in (0, 1000]", c.ReadRate, c.ProbeRate)
	case c.ReadIngest != ReadIngestTopic && c.ReadIngest != ReadIngestHTTP:
		return fmt.Errorf("featurebench: read ingest %q: want %s or %s", c.ReadIngest, ReadIngestTopic, ReadIngestHTTP)
	case c.Parallelism < 0 || c.Parallelism > 16:
		return fmt.Errorf("featurebench: parallelism %d outside [0, 16]", c.Parallelism)
	case c.NaiveDuration < 100*time.Millisecond || c.NaiveClients < 1 || c.NaiveClients > 256:
		return fmt.Errorf("featurebench: naive duration %v (>= 100 ms) or clients %d (1..256)", c.NaiveDuration, c.NaiveClients)
	}
	return nil
}
