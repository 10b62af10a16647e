package features

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
	"github.com/bulwark-ledger/bulwark/internal/features/tile"
)

// Verification recomputes every active feature by brute force from the
// raw history (the event log, the entries table) and compares it with the
// engine's answers at one fixed time. Both sides aggregate exactly the
// events whose time falls in the buckets tile.Cover names for the window,
// so they must agree exactly; distinct_count beyond its exact range (a
// HyperLogLog sketch) must agree within DistinctTolerance. A feature whose
// tenant hit features.max_entities, or whose version is still building,
// is not comparable: the first is reported as a mismatch, the second
// skipped and counted.

// DistinctTolerance is the relative error allowed between the engine's
// and the brute-force distinct_count once the sketch is approximate.
const DistinctTolerance = 0.05

// Mismatch is one value on which the engine and the brute force differ.
type Mismatch struct {
	Tenant   string `json:"tenant"`
	Feature  string `json:"feature"`
	Version  int32  `json:"version"`
	Entity   string `json:"entity"`
	Window   string `json:"window"`
	Engine   string `json:"engine"`
	Expected string `json:"expected"`
}

// Report is the outcome of Verify.
type Report struct {
	At         time.Time  `json:"at"`
	Features   int        `json:"features"`
	Skipped    int        `json:"skipped_building"`
	Entities   int        `json:"entities"`
	Values     int        `json:"values"`
	Events     int        `json:"events"`
	Mismatches []Mismatch `json:"mismatches"`
}

// maxVerifyMismatches bounds the report.
const maxVerifyMismatches = 100

// Verify checks every active feature of every tenant at now.
func (e *Engine) Verify(ctx context.Context, now time.Time) (Report, error) {
	rep := Report{At: now.UTC()}
	rows, err := e.pool.Query(ctx, `SELECT DISTINCT tenant_id FROM feature_versions WHERE state <> 'retired' ORDER BY 1`)
	if err != nil {
		return rep, err
	}
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return rep, err
	}
	for _, t := range tenants {
		all, err := liveVersions(ctx, e.pool, []string{t})
		if err != nil {
			return rep, err
		}
		for _, v := range servedVersions(all) {
			if v.State != StateActive {
				rep.Skipped++
				continue
			}
			if err := e.verifyVersion(ctx, v, now, &rep); err != nil {
				return rep, fmt.Errorf("verify %s/%s v%d: %w", v.Tenant, v.Name, v.Version, err)
			}
		}
	}
	return rep, nil
}

func (e *Engine) verifyVersion(ctx context.Context, v *version, now time.Time, rep *Report) error {
	rep.Features++
	// Every cover starts after now - longest - one day (the coarsest tile).
	evs, err := e.rawHistory(ctx, v, now.Add(-v.longest-25*time.Hour))
	if err != nil {
		return err
	}
	rep.Events += len(evs)
	byEntity := map[string][]*spec.Event{}
	for i := range evs {
		if ent, _, ok := contribution(v, &evs[i]); ok {
			byEntity[ent] = append(byEntity[ent], &evs[i])
		}
	}
	// Entities the engine holds tiles for count too: a tile of an entity
	// with no event is double counting.
	rows, err := e.pool.Query(ctx, `SELECT DISTINCT entity FROM feature_tiles WHERE tenant_id = $1 AND field = $2`,
		v.Tenant, v.Def.Entity)
	if err != nil {
		return err
	}
	tiled, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, ent := range tiled {
		if _, ok := byEntity[ent]; !ok {
			byEntity[ent] = nil
		}
	}
	ents := make([]string, 0, len(byEntity))
	for ent := range byEntity {
		ents = append(ents, ent)
	}
	slices.Sort(ents)
	rep.Entities += len(ents)
	for len(ents) > 0 {
		n := min(len(ents), MaxReadEntities)
		if err := e.verifyEntities(ctx, v, ents[:n], byEntity, now, rep); err != nil {
			return err
		}
		ents = ents[n:]
	}
	return nil
}

func (e *Engine) verifyEntities(ctx context.Context, v *version, ents []string, byEntity map[string][]*spec.Event, now time.Time, rep *Report) error {
	refs := make([]EntityRef, len(ents))
	targets := make([]target, len(ents))
	for i, ent := range ents {
		refs[i] = EntityRef{Type: v.Def.Entity, ID: ent}
		targets[i] = target{v: v, entity: i}
	}
	got, err := e.readTargets(ctx, v.Tenant, refs, targets, now)
	if err != nil {
		return err
	}
	for i, ent := range ents {
		for _, w := range v.Def.Windows {
			want := bruteForce(v, w, byEntity[ent], now)
			have, err := json.Marshal(got[i].Features[v.Name].Values[w.String()])
			if err != nil {
				return err
			}
			rep.Values++
			if !agree(v.Def.Aggregation, have, want) && len(rep.Mismatches) < maxVerifyMismatches {
				rep.Mismatches = append(rep.Mismatches, Mismatch{Tenant: v.Tenant, Feature: v.Name, Version: v.Version,
					Entity: ent, Window: w.String(), Engine: string(have), Expected: string(want)})
			}
		}
	}
	return nil
}

// bruteForce aggregates the events whose time lies in a bucket of the
// window's cover, each added on its own.
func bruteForce(v *version, w spec.Window, evs []*spec.Event, now time.Time) []byte {
	cover := map[tile.Bucket]struct{}{}
	for _, b := range tile.Cover(now, w) {
		cover[b] = struct{}{}
	}
	st := tile.NewState()
	for _, ev := range evs {
		for _, b := range tile.Buckets(ev.Time) {
			if _, ok := cover[b]; ok {
				_, val, _ := contribution(v, ev)
				st.Add(val, ev.Time, ev.ID)
				break
			}
		}
	}
	out, _ := json.Marshal(st.Result(v.Def.Aggregation)) // a Result always marshals
	return out
}

func agree(agg string, have, want []byte) bool {
	if bytes.Equal(have, want) {
		return true
	}
	if agg != "distinct_count" {
		return false
	}
	h, err1 := strconv.ParseFloat(string(have), 64)
	w, err2 := strconv.ParseFloat(string(want), 64)
	return err1 == nil && err2 == nil && w > 0 && math.Abs(h-w)/w <= DistinctTolerance
}

// rawHistory reads the source rows of v from since on.
func (e *Engine) rawHistory(ctx context.Context, v *version, since time.Time) ([]spec.Event, error) {
	var out []spec.Event
	if v.Def.Source == SourceLedger {
		rows, err := e.pool.Query(ctx, `SELECT `+entryCols+` FROM entries WHERE tenant_id = $1 AND created_at >= $2`, v.Tenant, since)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var r entryRow
			if err := r.scan(rows); err != nil {
				return nil, err
			}
			ev, err := r.event()
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		return out, rows.Err()
	}
	rows, err := e.pool.Query(ctx, `SELECT body FROM feature_events WHERE tenant_id = $1 AND event_time >= $2`, v.Tenant, since)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		ev, err := spec.DecodeEvent(body)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}
