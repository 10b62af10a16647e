package features

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
	"github.com/bulwark-ledger/bulwark/internal/features/tile"
)

// Reads merge, per feature and window, the tiles tile.Cover names (a
// bounded number whatever the event rate), read with one query for every
// requested entity and feature: one index range scan per (feature,
// entity, level).

// readCacheTTL bounds how long the API answers from a version list it
// loaded: a definition change or a version switch is visible within it.
const readCacheTTL = time.Second

type readCache struct {
	mu sync.Mutex
	m  map[string]readEntry // guarded by mu
}

type readEntry struct {
	at     time.Time
	served []*version
}

// served returns the versions reads of tenant answer from.
func (e *Engine) served(ctx context.Context, tenant string) ([]*version, error) {
	now := time.Now()
	e.reads.mu.Lock()
	ent, ok := e.reads.m[tenant]
	e.reads.mu.Unlock()
	if ok && now.Sub(ent.at) < readCacheTTL {
		return ent.served, nil
	}
	all, err := liveVersions(ctx, e.pool, []string{tenant})
	if err != nil {
		return nil, err
	}
	s := servedVersions(all)
	e.reads.mu.Lock()
	if e.reads.m == nil || len(e.reads.m) >= maxCachedTenants {
		e.reads.m = make(map[string]readEntry)
	}
	e.reads.m[tenant] = readEntry{at: now, served: s}
	e.reads.mu.Unlock()
	return s, nil
}

// forget drops tenant's cached versions (after this process changed them).
func (e *Engine) forget(tenant string) {
	e.reads.mu.Lock()
	delete(e.reads.m, tenant)
	e.reads.mu.Unlock()
}

// EntityRef names one entity: the entity field of features ("card") and
// the entity's value ("c-42").
type EntityRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// FeatureValue is one feature's answer for one entity.
type FeatureValue struct {
	Version     int32  `json:"version"`
	Building    bool   `json:"building,omitempty"`
	Aggregation string `json:"aggregation"`
	// Values per window ("10m", "1h", …).
	Values          map[string]tile.Result `json:"values"`
	NewestEventTime *time.Time             `json:"newest_event_time"`
}

// EntityValues are the values of every feature of one entity.
type EntityValues struct {
	EntityType      string                  `json:"entity_type"`
	EntityID        string                  `json:"entity_id"`
	NewestEventTime *time.Time              `json:"newest_event_time"`
	Features        map[string]FeatureValue `json:"features"`
}

// target is one (feature version, entity) a read needs.
type target struct {
	v      *version
	entity int // index into the entity list
	extra  *tile.State
	extraT time.Time
}

// Read returns the values at now of every feature of tenant for each of
// ents (features whose entity field is the ref's type).
func (e *Engine) Read(ctx context.Context, tenant string, ents []EntityRef, now time.Time) ([]EntityValues, error) {
	vs, err := e.served(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var targets []target
	for i, ref := range ents {
		for _, v := range vs {
			if v.Def.Entity == ref.Type {
				targets = append(targets, target{v: v, entity: i})
			}
		}
	}
	return e.readTargets(ctx, tenant, ents, targets, now)
}

// readTargets reads and merges the tiles of targets.
func (e *Engine) readTargets(ctx context.Context, tenant string, ents []EntityRef, targets []target, now time.Time) ([]EntityValues, error) {
	out := make([]EntityValues, len(ents))
	for i, ref := range ents {
		out[i] = EntityValues{EntityType: ref.Type, EntityID: ref.ID, Features: map[string]FeatureValue{}}
	}
	if len(targets) == 0 {
		return out, nil
	}
	q := newTileQuery(tenant, ents, targets, now)
	rows, err := e.pool.Query(ctx, tileQuerySQL, q.args...)
	if err != nil {
		return nil, fmt.Errorf("read tiles: %w", err)
	}
	tiles, err := q.scan(rows)
	if err != nil {
		return nil, err
	}
	return mergeTargets(out, targets, tiles, q.covers), nil
}

// mergeTargets merges, per target and window, the fetched tiles of the
// window's cover (and the target's extra event) into out.
func mergeTargets(out []EntityValues, targets []target, tiles []map[tile.Bucket]fetched, cc *coverCache) []EntityValues {
	for i, t := range targets {
		fv := FeatureValue{Version: t.v.Version, Building: t.v.State == StateBuilding,
			Aggregation: t.v.Def.Aggregation, Values: make(map[string]tile.Result, len(t.v.Def.Windows))}
		var newest int64
		for _, w := range t.v.Def.Windows {
			st := tile.NewState()
			for _, b := range cc.get(w) {
				if ft, ok := tiles[i][b]; ok {
					st.Merge(ft.st)
					newest = max(newest, ft.newest)
				}
				if t.extra != nil && covers(b, t.extraT) {
					st.Merge(t.extra)
					newest = max(newest, t.extraT.UnixMicro())
				}
			}
			fv.Values[w.String()] = st.Result(t.v.Def.Aggregation)
		}
		if newest > 0 {
			ts := time.UnixMicro(newest).UTC()
			fv.NewestEventTime = &ts
			ev := &out[t.entity]
			if ev.NewestEventTime == nil || ts.After(*ev.NewestEventTime) {
				ev.NewestEventTime = &ts
			}
		}
		out[t.entity].Features[t.v.Name] = fv
	}
	return out
}

// coverCache computes each window's cover once per read, for the query and
// the merge: the features of a tenant mostly share their windows (the
// benchmark's 20 features have 4), and a 1-day cover is up to ~140
// buckets.
type coverCache struct {
	now time.Time
	m   map[spec.Window][]tile.Bucket
}

func (c *coverCache) get(w spec.Window) []tile.Bucket {
	if b, ok := c.m[w]; ok {
		return b
	}
	if c.m == nil {
		c.m = make(map[spec.Window][]tile.Bucket, 4)
	}
	b := tile.Cover(c.now, w)
	c.m[w] = b
	return b
}

func covers(b tile.Bucket, t time.Time) bool {
	s := t.Unix()
	return s >= b.Start && s < b.Start+int64(b.Level.Size()/time.Second)
}

type fetched struct {
	st     *tile.State
	newest int64
}

// tileQuery reads, for each target, its tiles within the union of the
// covers of its windows, per level as a bucket range: one query over the
// tile rows of every distinct (entity field, entity), each row decoded
// once and shared by the targets on it.
type tileQuery struct {
	covers  *coverCache // the covers of the targets' windows at now
	args    []any
	targets []target
	byGroup [][]int // group (entity field, entity) → targets
}

const tileQuerySQL = `SELECT u.g, t.level, t.bucket, t.state
	FROM unnest($2::text[], $3::text[], $4::int[]) AS u(field, entity, g)
	CROSS JOIN unnest($5::smallint[], $6::bigint[], $7::bigint[]) AS c(level, lo, hi)
	JOIN feature_tiles t ON t.tenant_id = $1 AND t.field = u.field AND t.entity = u.entity
		AND t.level = c.level AND t.bucket BETWEEN c.lo AND c.hi`

func newTileQuery(tenant string, ents []EntityRef, targets []target, now time.Time) *tileQuery {
	type rng struct{ lo, hi int64 }
	ranges := map[tile.Level]rng{}
	type group struct{ field, entity string }
	groups := map[group]int32{}
	var field, ent []string
	var gidx []int32
	q := &tileQuery{targets: targets, covers: &coverCache{now: now}}
	for i, t := range targets {
		g := group{t.v.Def.Entity, ents[t.entity].ID}
		gi, ok := groups[g]
		if !ok {
			gi = int32(len(field))
			groups[g] = gi
			field, ent, gidx = append(field, g.field), append(ent, g.entity), append(gidx, gi)
			q.byGroup = append(q.byGroup, nil)
		}
		q.byGroup[gi] = append(q.byGroup[gi], i)
		for _, w := range t.v.Def.Windows {
			if _, ok := q.covers.m[w]; ok {
				continue // its cover is in ranges already
			}
			for _, b := range q.covers.get(w) {
				r, ok := ranges[b.Level]
				if !ok {
					r = rng{b.Start, b.Start}
				}
				ranges[b.Level] = rng{min(r.lo, b.Start), max(r.hi, b.Start)}
			}
		}
	}
	var lv []int16
	var lo, hi []int64
	for l, r := range ranges {
		lv, lo, hi = append(lv, int16(l)), append(lo, r.lo), append(hi, r.hi)
	}
	q.args = []any{tenant, field, ent, gidx, lv, lo, hi}
	return q
}

// scan decodes the rows of tileQuerySQL into each target's tiles.
func (q *tileQuery) scan(rows pgx.Rows) ([]map[tile.Bucket]fetched, error) {
	defer rows.Close()
	out := make([]map[tile.Bucket]fetched, len(q.targets))
	for rows.Next() {
		var g int32
		var level int16
		var start int64
		var raw []byte
		if err := rows.Scan(&g, &level, &start, &raw); err != nil {
			return nil, err
		}
		es, err := decodeBundle(raw)
		if err != nil {
			return nil, fmt.Errorf("tile row: %w", err)
		}
		b := tile.Bucket{Level: tile.Level(level), Start: start}
		for _, i := range q.byGroup[g] {
			v := q.targets[i].v
			en, ok := findEntry(es, fv{v.Name, v.Version})
			if !ok {
				continue
			}
			st := tile.NewState()
			if err := st.UnmarshalBinary(en.State); err != nil {
				return nil, fmt.Errorf("decode tile: %w", err)
			}
			if out[i] == nil {
				out[i] = make(map[tile.Bucket]fetched)
			}
			out[i][b] = fetched{st: st, newest: en.Newest}
		}
	}
	return out, rows.Err()
}

// Evaluation is the answer of Evaluate.
type Evaluation struct {
	EventID  string         `json:"event_id"`
	Late     bool           `json:"late,omitempty"`
	Recorded bool           `json:"recorded"`
	Entities []EntityValues `json:"entities"`
}

// evaluateTargets lists, for every served feature whose entity field ev
// has, the entity and what ev adds to it (nil when ev does not count:
// filter, ledger source, late, or applied already).
func evaluateTargets(vs []*version, ev *spec.Event, counts bool) ([]EntityRef, []target) {
	var ents []EntityRef
	index := map[EntityRef]int{}
	var targets []target
	for _, v := range vs {
		val, ok := ev.Get(v.Def.Entity)
		if !ok {
			continue
		}
		ref := EntityRef{Type: v.Def.Entity, ID: EntityKey(val)}
		i, ok := index[ref]
		if !ok {
			i = len(ents)
			index[ref] = i
			ents = append(ents, ref)
		}
		t := target{v: v, entity: i}
		if counts && v.Def.Source == SourceEvents {
			if _, x, ok := contribution(v, ev); ok {
				t.extra = tile.NewState()
				t.extra.AddFor(v.Def.Aggregation, x, ev.Time, ev.ID)
				t.extraT = ev.Time
			}
		}
		targets = append(targets, t)
	}
	return ents, targets
}
