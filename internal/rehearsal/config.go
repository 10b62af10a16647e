package rehearsal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrBadInput marks a configuration, scenario, URL or key refused before
// any load was sent (`bulwark load` exits 2).
var ErrBadInput = errors.New("bad input")

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadInput, fmt.Sprintf(format, args...))
}

// ClassPayments is the top class: the capacity search and the verdict are
// about it.
const ClassPayments = "payments"

// op is what one request of a class does.
type op uint8

const (
	opTransfer    op = iota // POST /v1/transactions, one posting of 1 minor unit
	opRead                  // GET /v1/accounts/{id}
	opFeatureRead           // GET /v1/features/card/{id}
	opEvaluate              // POST /v1/features/evaluate, not recorded
	opExport                // POST /v1/exports: entries of one account (deduplicated while one runs)
)

// classSpec is a class that exists today.
type classSpec struct {
	op      op
	traffic string // Bulwark-Traffic claim; "" for none (normal)
}

// classes: payments at the top level (route payments), reads as ordinary
// reads, batch and crawler as reads claiming those traffic types (the key
// must be entitled, else admission treats them as normal); features
// (reads of the run's feature) and evaluate (the synchronous risk check)
// in the features route class, below payments and above reads; exports
// (background jobs, shed first).
var classes = map[string]classSpec{
	ClassPayments: {op: opTransfer},
	"reads":       {op: opRead},
	"batch":       {op: opRead, traffic: "batch"},
	"crawler":     {op: opRead, traffic: "crawler"},
	"features":    {op: opFeatureRead},
	"evaluate":    {op: opEvaluate},
	"exports":     {op: opExport},
}

// needsFeature says whether a mix reads features: the run then defines
// its feature (loadFeature) before any load is sent.
func needsFeature(mix []Share) bool {
	return slices.ContainsFunc(mix, func(sh Share) bool {
		op := classes[sh.Class].op
		return op == opFeatureRead || op == opEvaluate
	})
}

func knownClasses() string {
	names := make([]string, 0, len(classes))
	for n := range classes {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Share is one class of the mix and its weight (any positive number; the
// weights are normalised).
type Share struct {
	Class  string
	Weight float64
}

// maxClasses bounds a mix: one entry per known class.
const maxClasses = 7

// ParseMix parses "payments=70,reads=25,crawler=5".
func ParseMix(s string) ([]Share, error) {
	if strings.TrimSpace(s) == "" {
		return nil, badInput("mix: empty; want class=weight,… with classes %s", knownClasses())
	}
	var mix []Share
	for part := range strings.SplitSeq(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, badInput("mix %q: entry %q: want class=weight", s, part)
		}
		weight, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil {
			return nil, badInput("mix %q: weight of %s: %v", s, name, err)
		}
		mix = append(mix, Share{Class: strings.TrimSpace(name), Weight: weight})
	}
	return mix, validateMix(mix)
}

func validateMix(mix []Share) error {
	if len(mix) == 0 || len(mix) > maxClasses {
		return badInput("mix: %d classes; want 1 to %d of %s", len(mix), maxClasses, knownClasses())
	}
	seen := map[string]bool{}
	for _, sh := range mix {
		if _, ok := classes[sh.Class]; !ok {
			return badInput("unknown class %q (known classes: %s)", sh.Class, knownClasses())
		}
		if seen[sh.Class] {
			return badInput("class %q given twice", sh.Class)
		}
		seen[sh.Class] = true
		if !(sh.Weight > 0 && sh.Weight <= 1e6) {
			return badInput("class %s: weight %g; want more than 0, at most 1e6", sh.Class, sh.Weight)
		}
	}
	if !seen[ClassPayments] {
		return badInput("mix has no %s: the capacity and the verdict are measured on them", ClassPayments)
	}
	return nil
}

// Scenario is the file form of a rehearsal (JSON); every field is
// optional and a flag given on the command line wins over it.
//
//	{"mix": {"payments": 70, "reads": 25, "crawler": 5},
//	 "factors": [1, 2, 4, 10], "stage_duration": "5s", "step_duration": "2s",
//	 "preset": "surge", "preset_at": 10}
type Scenario struct {
	Mix           map[string]float64 `json:"mix"`
	Factors       []float64          `json:"factors"`
	StageDuration string             `json:"stage_duration"`
	StepDuration  string             `json:"step_duration"`
	Preset        string             `json:"preset"`
	PresetAt      float64            `json:"preset_at"`
}

// maxScenarioBytes bounds a scenario file: a few lines are expected.
const maxScenarioBytes = 64 << 10

// ParseScenario decodes a scenario and applies it to cfg. Unknown fields,
// trailing data and bad values are refused.
func ParseScenario(r io.Reader, cfg *Config) error {
	data, err := io.ReadAll(io.LimitReader(r, maxScenarioBytes+1))
	if err != nil {
		return badInput("scenario: %v", err)
	}
	if len(data) > maxScenarioBytes {
		return badInput("scenario: larger than %d bytes", maxScenarioBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		return badInput("scenario: %v", err)
	}
	if dec.More() {
		return badInput("scenario: trailing data after the JSON object")
	}
	return sc.apply(cfg)
}

func (sc *Scenario) apply(cfg *Config) error {
	if len(sc.Mix) > 0 {
		cfg.Mix = cfg.Mix[:0]
		for name, w := range sc.Mix {
			cfg.Mix = append(cfg.Mix, Share{Class: name, Weight: w})
		}
		// Map order is random: sort, so that a seed replays the same run.
		slices.SortFunc(cfg.Mix, func(a, b Share) int { return strings.Compare(a.Class, b.Class) })
		if err := validateMix(cfg.Mix); err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
	}
	if sc.Factors != nil {
		cfg.Factors = sc.Factors
	}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{sc.StageDuration, &cfg.StageDuration}, {sc.StepDuration, &cfg.StepDuration}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return badInput("scenario: %v", err)
		}
		*d.dst = v
	}
	if sc.Preset != "" {
		cfg.Preset, cfg.PresetAt = sc.Preset, sc.PresetAt
	}
	return nil
}
