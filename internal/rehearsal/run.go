package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrNoCapacity is returned when payments miss their capacity objectives
// already at the start rate: there is no capacity to multiply.
var ErrNoCapacity = errors.New("no capacity found")

// Run rehearses a surge: it checks the URL and the keys and prepares the
// tenant (ErrBadInput if any of it fails, before any load), finds the
// capacity, holds each factor of it, and judges the objectives. The
// report's Verdict says whether they held; Run's error is for a rehearsal
// that could not be carried out.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, err := open(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	rep, err := rehearse(ctx, &cfg, t)
	return rep, errors.Join(err, t.close(ctx))
}

func rehearse(ctx context.Context, cfg *Config, t *target) (*Report, error) {
	g := newGenerator(cfg, t)
	rep := &Report{Tenant: t.tenant, Objectives: objectives(cfg)}
	capacity, err := searchCapacity(ctx, g, rep)
	if err != nil {
		return rep, err
	}
	rep.CapacityPerSec = capacity
	for _, f := range cfg.Factors {
		rate := min(f*capacity, maxRateLimit)
		preset := ""
		if cfg.Preset != "" && f == cfg.PresetAt {
			if err := t.applyPreset(ctx, cfg.Preset); err != nil {
				return rep, err
			}
			preset = cfg.Preset
		}
		ts, lag := g.stage(ctx, fmt.Sprintf("stage %g×", f), rate, cfg.StageDuration)
		if preset != "" {
			if err := t.revertPreset(ctx, preset); err != nil {
				return rep, err
			}
		}
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("stage %g×: %w", f, err)
		}
		for i, tl := range ts {
			row := newRow(f, rate, cfg.StageDuration, cfg.Mix[i].Class, preset, &tl)
			row.GeneratorLagMs = msf(lag)
			rep.Stages = append(rep.Stages, row)
		}
	}
	rep.judge(cfg)
	return rep, nil
}

// searchCapacity doubles the rate every StepDuration from StartRate while
// payments keep their capacity objectives, up to MaxRate; the capacity is
// the last good rate (so it is within a factor 2 below the true knee).
func searchCapacity(ctx context.Context, g *generator, rep *Report) (float64, error) {
	cfg := g.cfg
	pi := slices.IndexFunc(cfg.Mix, func(s Share) bool { return s.Class == ClassPayments })
	good := 0.0
	for rate := cfg.StartRate; ; rate = min(2*rate, cfg.MaxRate) {
		ts, _ := g.stage(ctx, "capacity step", rate, cfg.StepDuration)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("capacity search: %w", err)
		}
		pay := &ts[pi]
		step := Step{RatePerSec: rate, PaymentsOffered: pay.offered, PaymentsP99Ms: msf(pay.percentile(0.99))}
		if pay.offered > 0 {
			step.PaymentsNotAchieved = 1 - float64(pay.achieved)/float64(pay.offered)
		}
		step.Good = pay.offered > 0 && pay.percentile(0.99) <= cfg.CapacityP99 && step.PaymentsNotAchieved <= cfg.CapacityErrorRate
		rep.CapacitySteps = append(rep.CapacitySteps, step)
		if !step.Good {
			break
		}
		good = rate
		if rate >= cfg.MaxRate {
			rep.CapacityCapped = true
			break
		}
	}
	if good == 0 {
		return 0, fmt.Errorf("%w: payments miss p99 ≤ %s or not-achieved ≤ %g already at %g/s (lower --start-rate or loosen --capacity-p99)",
			ErrNoCapacity, cfg.CapacityP99, cfg.CapacityErrorRate, cfg.StartRate)
	}
	return good, nil
}

func msf(d time.Duration) float64 { return float64(d) / 1e6 }
