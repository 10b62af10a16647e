package features

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
	"github.com/bulwark-ledger/bulwark/internal/features/tile"
)

// Applying events: a batch of events is first aggregated in memory, one
// tile.State per touched tile row, then written with a fixed number of
// statements whatever the batch size (never one statement per event):
//
//  1. SELECT … FOR UPDATE the rows that exist, in key order;
//  2. INSERT the others with their final state (in key order; a row
//     another transaction inserted meanwhile is locked and merged next);
//  3. merge in memory and UPDATE the locked rows from arrays.
//
// Every transaction that writes tiles takes its row locks in the same
// order (tenant, entity field, entity, level, bucket, compared as bytes:
// COLLATE "C"), existing rows first, then the rows it inserts, so
// concurrent writers (two partitions of one entity after a partition
// increase, a backfill chunk and the live path) wait for each other but do
// not deadlock: of two writers each waiting for the other, both would have
// to wait in the same phase, and within a phase keys are taken in order.
// The one exception is a row two writers insert at once: the loser locks it
// after its other rows; PostgreSQL's deadlock detector and the caller's
// retry (a batch rolled back whole) cover that rare case.

type tileKey struct {
	Tenant string
	Field  string // the entity field of the features bundled in the row
	Entity string
	Level  int16
	Bucket int64
}

func (a tileKey) compare(b tileKey) int {
	return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Field, b.Field), cmp.Compare(a.Entity, b.Entity),
		cmp.Compare(a.Level, b.Level), cmp.Compare(a.Bucket, b.Bucket))
}

type tileAcc struct {
	st     *tile.State
	newest int64 // unix µs
}

// entityRef is one entity of one tenant, for the entity limit.
type entityRef struct{ Tenant, Field, Entity string }

// batch aggregates events into tile states: per tile row, per feature
// version.
type batch struct {
	tiles    map[tileKey]map[fv]*tileAcc
	entities map[entityRef]struct{}
	events   int
}

func newBatch() *batch {
	return &batch{tiles: make(map[tileKey]map[fv]*tileAcc), entities: make(map[entityRef]struct{})}
}

// EntityKey is the text form of an entity value: strings as they are,
// integers in decimal, booleans as true/false. Reads name entities by it.
func EntityKey(v spec.Value) string {
	switch v.Kind() {
	case spec.KindInt:
		return v.Int().String()
	case spec.KindBool:
		return strconv.FormatBool(v.Bool())
	default:
		return v.Str()
	}
}

// contribution returns what ev adds to feature v: the entity and the value
// (the zero Value for count), or ok false when ev does not count (filter,
// missing entity or field).
func contribution(v *version, ev *spec.Event) (entity string, val spec.Value, ok bool) {
	if v.filter != nil && !v.filter.Match(ev) {
		return "", spec.Value{}, false
	}
	ent, ok := ev.Get(v.Def.Entity)
	if !ok {
		return "", spec.Value{}, false
	}
	if v.Def.Field != "" {
		if val, ok = ev.Get(v.Def.Field); !ok {
			return "", spec.Value{}, false
		}
	}
	return EntityKey(ent), val, true
}

// add aggregates ev into feature v.
func (b *batch) add(v *version, ev *spec.Event) {
	entity, val, ok := contribution(v, ev)
	if !ok {
		return
	}
	b.events++
	b.entities[entityRef{v.Tenant, v.Def.Entity, entity}] = struct{}{}
	us := ev.Time.UnixMicro()
	f := fv{v.Name, v.Version}
	all := tile.Buckets(ev.Time)
	for _, bk := range all[v.minLevel:] {
		k := tileKey{v.Tenant, v.Def.Entity, entity, int16(bk.Level), bk.Start}
		row := b.tiles[k]
		if row == nil {
			row = make(map[fv]*tileAcc, 1)
			b.tiles[k] = row
		}
		a := row[f]
		if a == nil {
			a = &tileAcc{st: tile.NewState()}
			row[f] = a
		}
		a.st.Add(val, ev.Time, ev.ID)
		a.newest = max(a.newest, us)
	}
}

// tileArrays are tile keys as column arrays for unnest.
type tileArrays struct {
	tenant, field, entity []string
	level                 []int16
	bucket                []int64
	state                 [][]byte
}

func (t *tileArrays) append(k tileKey, state []byte) {
	t.tenant = append(t.tenant, k.Tenant)
	t.field = append(t.field, k.Field)
	t.entity = append(t.entity, k.Entity)
	t.level = append(t.level, k.Level)
	t.bucket = append(t.bucket, k.Bucket)
	t.state = append(t.state, state)
}

const tileOrder = `tenant_id COLLATE "C", field COLLATE "C", entity COLLATE "C", level, bucket`

// writeTiles merges b's tiles into feature_tiles within tx: the rows that
// exist are locked and merged, the others inserted; each row's bundle is
// encoded and sent once.
func (b *batch) writeTiles(ctx context.Context, tx pgx.Tx) error {
	if len(b.tiles) == 0 {
		return nil
	}
	keys := make([]tileKey, 0, len(b.tiles))
	for k := range b.tiles {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, tileKey.compare)
	var upd tileArrays
	found, err := b.lockAndMerge(ctx, tx, keys, &upd)
	if err != nil {
		return err
	}
	var ins tileArrays
	for _, k := range keys {
		if _, ok := found[k]; ok {
			continue
		}
		raw, err := mergeBundle(nil, b.tiles[k])
		if err != nil {
			return err
		}
		ins.append(k, raw)
	}
	if len(ins.tenant) > 0 {
		raced, err := insertTiles(ctx, tx, &ins)
		if err != nil {
			return err
		}
		// Rows another transaction inserted since the lock: merge into them.
		if len(raced) > 0 {
			got, err := b.lockAndMerge(ctx, tx, raced, &upd)
			if err != nil {
				return err
			}
			if len(got) != len(raced) {
				return fmt.Errorf("features: %d of %d tiles vanished between insert and lock", len(raced)-len(got), len(raced))
			}
		}
	}
	if len(upd.tenant) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `UPDATE feature_tiles t SET state = u.state
		FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], $6::bytea[])
			AS u(tenant_id, field, entity, level, bucket, state)
		WHERE (t.tenant_id, t.field, t.entity, t.level, t.bucket) = (u.tenant_id, u.field, u.entity, u.level, u.bucket)`,
		upd.tenant, upd.field, upd.entity, upd.level, upd.bucket, upd.state)
	if err != nil {
		return fmt.Errorf("update tiles: %w", err)
	}
	return nil
}

// insertTiles inserts ins (in key order) and returns the keys that
// conflicted with a row inserted meanwhile by another transaction.
func insertTiles(ctx context.Context, tx pgx.Tx, ins *tileArrays) ([]tileKey, error) {
	rows, err := tx.Query(ctx, `INSERT INTO feature_tiles (tenant_id, field, entity, level, bucket, state)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], $6::bytea[])
		ON CONFLICT DO NOTHING RETURNING tenant_id, field, entity, level, bucket`,
		ins.tenant, ins.field, ins.entity, ins.level, ins.bucket, ins.state)
	if err != nil {
		return nil, fmt.Errorf("insert tiles: %w", err)
	}
	inserted := make(map[tileKey]struct{}, len(ins.tenant))
	for rows.Next() {
		var k tileKey
		if err := rows.Scan(&k.Tenant, &k.Field, &k.Entity, &k.Level, &k.Bucket); err != nil {
			rows.Close()
			return nil, err
		}
		inserted[k] = struct{}{}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert tiles: %w", err)
	}
	var raced []tileKey
	for i := range ins.tenant {
		k := tileKey{ins.tenant[i], ins.field[i], ins.entity[i], ins.level[i], ins.bucket[i]}
		if _, ok := inserted[k]; !ok {
			raced = append(raced, k)
		}
	}
	return raced, nil
}

// lockAndMerge locks the rows of keys that exist (FOR UPDATE, in key
// order), merges b's states into them, appends the results to upd and
// returns the keys it found.
func (b *batch) lockAndMerge(ctx context.Context, tx pgx.Tx, keys []tileKey, upd *tileArrays) (map[tileKey]struct{}, error) {
	var sel tileArrays
	for _, k := range keys {
		sel.append(k, nil)
	}
	rows, err := tx.Query(ctx, `SELECT t.tenant_id, t.field, t.entity, t.level, t.bucket, t.state
		FROM feature_tiles t JOIN unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[])
			AS u(tenant_id, field, entity, level, bucket)
		USING (tenant_id, field, entity, level, bucket)
		ORDER BY `+tileOrder+` FOR UPDATE OF t`,
		sel.tenant, sel.field, sel.entity, sel.level, sel.bucket)
	if err != nil {
		return nil, fmt.Errorf("lock tiles: %w", err)
	}
	defer rows.Close()
	found := make(map[tileKey]struct{})
	for rows.Next() {
		var k tileKey
		var raw []byte
		if err := rows.Scan(&k.Tenant, &k.Field, &k.Entity, &k.Level, &k.Bucket, &raw); err != nil {
			return nil, err
		}
		old, err := decodeBundle(raw)
		if err != nil {
			return nil, fmt.Errorf("tile %v: %w", k, err)
		}
		out, err := mergeBundle(old, b.tiles[k])
		if err != nil {
			return nil, err
		}
		upd.append(k, out)
		found[k] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock tiles: %w", err)
	}
	return found, nil
}

// asyncCommit lets tx commit without waiting for its WAL flush. It is
// safe for the transactions that advance a checkpoint together with the
// tiles it covers (a live batch with its Kafka position, a task chunk with
// its partition's cursor): a commit lost in a PostgreSQL crash is lost
// whole, position or cursor included, and redone from Kafka or the history
// — nothing was acknowledged on the strength of it. Every synchronous
// commit after it (a definition change, an evaluate's outbox row) flushes
// it too, as the WAL is sequential. It removes one fsync per partition
// batch from the live path.
func asyncCommit(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
		return fmt.Errorf("synchronous_commit: %w", err)
	}
	return nil
}

// limits reads the per-tenant settings the apply path needs.
type limits interface {
	Int(tenant, key string) int64
}

// admitEntities enforces features.max_entities: entities b touches that
// the tenant does not track yet are tracked while the tenant is under its
// limit; tiles of refused entities are dropped from b (and counted).
// The count rows are locked in tenant order before any tile.
func (b *batch) admitEntities(ctx context.Context, tx pgx.Tx, lim limits, maxKey string) (refused int, err error) {
	if len(b.entities) == 0 {
		return 0, nil
	}
	refs := make([]entityRef, 0, len(b.entities))
	for r := range b.entities {
		refs = append(refs, r)
	}
	slices.SortFunc(refs, func(a, b entityRef) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Field, b.Field), cmp.Compare(a.Entity, b.Entity))
	})
	var tn, fl, en []string
	for _, r := range refs {
		tn, fl, en = append(tn, r.Tenant), append(fl, r.Field), append(en, r.Entity)
	}
	rows, err := tx.Query(ctx, `SELECT u.t, u.f, u.e FROM unnest($1::text[], $2::text[], $3::text[]) AS u(t, f, e)
		WHERE NOT EXISTS (SELECT 1 FROM feature_entities x WHERE x.tenant_id = u.t AND x.field = u.f AND x.entity = u.e)`, tn, fl, en)
	if err != nil {
		return 0, fmt.Errorf("known entities: %w", err)
	}
	fresh, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (entityRef, error) {
		var e entityRef
		return e, r.Scan(&e.Tenant, &e.Field, &e.Entity)
	})
	if err != nil || len(fresh) == 0 {
		return 0, err
	}
	slices.SortFunc(fresh, func(a, b entityRef) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Field, b.Field), cmp.Compare(a.Entity, b.Entity))
	})
	refusedSet := make(map[entityRef]struct{})
	tn, fl, en = tn[:0], fl[:0], en[:0]
	for i := 0; i < len(fresh); {
		j := i
		for j < len(fresh) && fresh[j].Tenant == fresh[i].Tenant {
			j++
		}
		t := fresh[i].Tenant
		var have int64
		if err := tx.QueryRow(ctx, `INSERT INTO feature_entity_counts (tenant_id, entities) VALUES ($1, 0)
			ON CONFLICT (tenant_id) DO UPDATE SET entities = feature_entity_counts.entities
			RETURNING entities`, t).Scan(&have); err != nil {
			return 0, fmt.Errorf("entity count: %w", err)
		}
		room := max(lim.Int(t, maxKey)-have, 0)
		n := min(int64(j-i), room)
		for k := i; k < j; k++ {
			if int64(k-i) < n {
				tn, fl, en = append(tn, fresh[k].Tenant), append(fl, fresh[k].Field), append(en, fresh[k].Entity)
			} else {
				refusedSet[fresh[k]] = struct{}{}
			}
		}
		if n > 0 {
			if _, err := tx.Exec(ctx, `UPDATE feature_entity_counts SET entities = entities + $2 WHERE tenant_id = $1`, t, n); err != nil {
				return 0, fmt.Errorf("entity count: %w", err)
			}
		}
		i = j
	}
	if len(tn) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO feature_entities (tenant_id, field, entity)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING`, tn, fl, en); err != nil {
			return 0, fmt.Errorf("track entities: %w", err)
		}
	}
	if len(refusedSet) == 0 {
		return 0, nil
	}
	return b.dropRefused(refusedSet), nil
}

// dropRefused removes the tiles of refused entities and returns how many
// tile updates that refused.
func (b *batch) dropRefused(refused map[entityRef]struct{}) int {
	n := 0
	for k, row := range b.tiles {
		if _, ok := refused[entityRef{k.Tenant, k.Field, k.Entity}]; ok {
			delete(b.tiles, k)
			n += len(row)
		}
	}
	return n
}
