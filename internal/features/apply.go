package features

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
	"github.com/bulwark-ledger/bulwark/internal/features/tile"
)

// Applying events: a batch of events is first aggregated in memory, one
// tile.State per touched tile row, then written with a few statements (one
// per tileChunk rows and phase; never one statement per event):
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

func (a entityRef) compare(b entityRef) int {
	return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Field, b.Field), cmp.Compare(a.Entity, b.Entity))
}

// batch aggregates events into tile states: per tile row, per feature
// version.
type batch struct {
	tiles    map[tileKey]map[fv]*tileAcc
	entities map[entityRef]struct{}
	events   int
	// memo holds the tile rows of the last (event, entity) added: an
	// event feeds every feature of its entity field, and they share rows,
	// so the next features of the event skip the map lookups (hashing
	// three strings each; a fifth of the live path's CPU before).
	memo struct {
		ev   *spec.Event
		ref  entityRef
		rows [tile.Levels]map[fv]*tileAcc
	}
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

// track records the entity ev has for feature v, without aggregating it
// (for admitEntities ahead of the tile transaction).
func (b *batch) track(v *version, ev *spec.Event) {
	if entity, _, ok := contribution(v, ev); ok {
		b.entities[entityRef{v.Tenant, v.Def.Entity, entity}] = struct{}{}
	}
}

// add aggregates ev into feature v. ev must keep its address while b
// lives and no other event may take it (the memo of rows goes by it).
func (b *batch) add(v *version, ev *spec.Event) {
	entity, val, ok := contribution(v, ev)
	if !ok {
		return
	}
	b.events++
	ref := entityRef{v.Tenant, v.Def.Entity, entity}
	if b.memo.ev != ev || b.memo.ref != ref {
		b.entities[ref] = struct{}{}
		b.memo.ev, b.memo.ref, b.memo.rows = ev, ref, [tile.Levels]map[fv]*tileAcc{}
	}
	us := ev.Time.UnixMicro()
	f := fv{v.Name, v.Version}
	all := tile.Buckets(ev.Time)
	for _, bk := range all[v.minLevel:] {
		row := b.memo.rows[bk.Level]
		if row == nil {
			k := tileKey{v.Tenant, v.Def.Entity, entity, int16(bk.Level), bk.Start}
			if row = b.tiles[k]; row == nil {
				row = make(map[fv]*tileAcc, 1)
				b.tiles[k] = row
			}
			b.memo.rows[bk.Level] = row
		}
		a := row[f]
		if a == nil {
			a = &tileAcc{st: tile.NewState()}
			row[f] = a
		}
		a.st.AddFor(v.Def.Aggregation, val, ev.Time, ev.ID)
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

func (t *tileArrays) key(i int) tileKey {
	return tileKey{t.tenant[i], t.field[i], t.entity[i], t.level[i], t.bucket[i]}
}

const tileOrder = `tenant_id COLLATE "C", field COLLATE "C", entity COLLATE "C", level, bucket`

// writeTiles merges b's tiles into feature_tiles within tx: the rows that
// exist are locked and merged, the others inserted; each row's bundle is
// encoded and sent once.
func (b *batch) writeTiles(ctx context.Context, tx pgx.Tx) error {
	_, err := b.write(ctx, tx, nil, nil)
	return err
}

// tileWrites counts how the rows of a cached write went (see write).
type tileWrites struct {
	hits, stale, inserted int
}

// write is writeTiles with a tileCache (nil: none). It returns what it
// wrote, bundle and new xmin per row, for the cache once tx commits.
//
// With a cache, rows go three ways, each in key order:
//
//  1. rows in the cache: merged into the cached bundle and updated only if
//     their xmin is still the cached one (see tileCache);
//  2. rows not in the cache: inserted with the batch's bundle if they do
//     not exist (ON CONFLICT DO NOTHING);
//  3. the rest (a stale entry, a row that existed after all): the locking
//     path, as without a cache.
//
// Phases 1 and 2 take their row locks in key order, phase 3 in key order
// after them; a deadlock between two writers (a row one updated in phase 1
// while the other redoes it in phase 3) is possible only when both meet a
// row the other wrote, which the cache makes rare for the live path (one
// writer per partition's rows); PostgreSQL detects it and the batch is
// retried whole.
func (b *batch) write(ctx context.Context, tx pgx.Tx, cache *tileCache, stats *tileWrites) (map[tileKey]cachedTile, error) {
	if stats == nil {
		stats = &tileWrites{}
	}
	out := make(map[tileKey]cachedTile, len(b.tiles))
	if len(b.tiles) == 0 {
		return out, nil
	}
	keys := make([]tileKey, 0, len(b.tiles))
	for k := range b.tiles {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, tileKey.compare)
	rest := keys
	if cache != nil {
		var err error
		if rest, err = b.writeOptimistic(ctx, tx, cache, keys, out, stats); err != nil {
			return nil, err
		}
	}
	if len(rest) == 0 {
		return out, nil
	}
	var upd tileArrays
	found, err := b.lockAndMerge(ctx, tx, rest, &upd)
	if err != nil {
		return nil, err
	}
	var ins tileArrays
	for i, k := range rest {
		giveWay(i)
		if _, ok := found[k]; ok {
			continue
		}
		raw, err := mergeBundle(nil, b.tiles[k])
		if err != nil {
			return nil, err
		}
		ins.append(k, raw)
	}
	if len(ins.tenant) > 0 {
		_, raced, err := insertInto(ctx, tx, &ins, out)
		if err != nil {
			return nil, err
		}
		// Rows another transaction inserted since the lock: merge into them.
		if len(raced) > 0 {
			got, err := b.lockAndMerge(ctx, tx, raced, &upd)
			if err != nil {
				return nil, err
			}
			if len(got) != len(raced) {
				return nil, fmt.Errorf("features: %d of %d tiles vanished between insert and lock", len(raced)-len(got), len(raced))
			}
		}
	}
	if len(upd.tenant) == 0 {
		return out, nil
	}
	updated, err := updateTiles(ctx, tx, &upd, nil)
	if err != nil {
		return nil, err
	}
	for i := range upd.tenant {
		k := upd.key(i)
		x, ok := updated[k]
		if !ok {
			return nil, fmt.Errorf("features: tile %v locked but not updated", k)
		}
		out[k] = cachedTile{raw: upd.state[i], xmin: x}
	}
	return out, nil
}

// tileChunk is how many rows one statement of writeOptimistic writes.
// The server encodes the next chunk while PostgreSQL writes this one;
// smaller chunks overlap more but cost a statement each.
const tileChunk = 1024

// writeOptimistic runs phases 1 and 2 of write and returns the keys left
// for the locking path, in key order. Rows go in chunks of tileChunk, in
// key order: each chunk's statement runs on a goroutine of its own while
// the next chunk is merged and encoded, so the server's encoding and
// PostgreSQL's writing overlap instead of taking turns.
func (b *batch) writeOptimistic(ctx context.Context, tx pgx.Tx, cache *tileCache, keys []tileKey,
	out map[tileKey]cachedTile, stats *tileWrites) ([]tileKey, error) {
	var hits, misses []tileKey
	var cached []cachedTile
	for _, k := range keys {
		if c, ok := cache.get(k); ok {
			hits, cached = append(hits, k), append(cached, c)
		} else {
			misses = append(misses, k)
		}
	}
	// One statement at a time (a connection runs one), each started once
	// the one before has ended. They write out, stats and redo; this
	// goroutine reads them only after Wait, and keeps its own list of the
	// rows it sends to the locking path itself (unreadable).
	var redo, unreadable []tileKey
	run, wait := oneAtATime(ctx)
	defer func() { _ = wait() }() // on an early return: no statement outlives the call
	for lo := 0; lo < len(hits); lo += tileChunk {
		var arr tileArrays
		var xmins []string
		for i := lo; i < min(lo+tileChunk, len(hits)); i++ {
			giveWay(i)
			k := hits[i]
			old, derr := decodeBundle(cached[i].raw)
			if derr != nil {
				unreadable = append(unreadable, k) // the locking path reads the row
				continue
			}
			raw, err := mergeBundle(old, b.tiles[k])
			if err != nil {
				return nil, err
			}
			arr.append(k, raw)
			xmins = append(xmins, strconv.FormatUint(uint64(cached[i].xmin), 10))
		}
		if len(arr.tenant) == 0 {
			continue
		}
		if err := run(func() error {
			updated, err := updateTiles(ctx, tx, &arr, xmins)
			if err != nil {
				return err
			}
			for i := range arr.tenant {
				k := arr.key(i)
				if x, ok := updated[k]; ok {
					out[k] = cachedTile{raw: arr.state[i], xmin: x}
					stats.hits++
				} else {
					redo = append(redo, k)
					stats.stale++
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	for lo := 0; lo < len(misses); lo += tileChunk {
		var arr tileArrays
		for i := lo; i < min(lo+tileChunk, len(misses)); i++ {
			giveWay(i)
			raw, err := mergeBundle(nil, b.tiles[misses[i]])
			if err != nil {
				return nil, err
			}
			arr.append(misses[i], raw)
		}
		if err := run(func() error {
			n, raced, err := insertInto(ctx, tx, &arr, out)
			if err != nil {
				return err
			}
			stats.inserted += n
			redo = append(redo, raced...)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if err := wait(); err != nil {
		return nil, err
	}
	redo = append(redo, unreadable...)
	slices.SortFunc(redo, tileKey.compare)
	return redo, nil
}

// oneAtATime runs the statements of one transaction one at a time (a
// connection runs one), each on a goroutine of its own once the one before
// has ended, so that the caller prepares the next meanwhile. After a
// failure run starts nothing more and returns it; wait waits for every
// statement and returns the first failure.
func oneAtATime(ctx context.Context) (run func(func() error) error, wait func() error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(1)
	run = func(f func() error) error {
		if gctx.Err() != nil { // a statement failed (the transaction is lost), or ctx ended
			if err := g.Wait(); err != nil {
				return err
			}
			return gctx.Err()
		}
		g.Go(f)
		return nil
	}
	return run, g.Wait
}

// updateTiles writes upd's states and returns the new xmin of each row
// written. With xmins (one per row, decimal), a row is written only if its
// xmin is still that one (see tileCache); rows not written are absent
// from the result.
func updateTiles(ctx context.Context, tx pgx.Tx, upd *tileArrays, xmins []string) (map[tileKey]uint32, error) {
	q := `UPDATE feature_tiles t SET state = u.state
		FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], $6::bytea[])
			AS u(tenant_id, field, entity, level, bucket, state)
		WHERE (t.tenant_id, t.field, t.entity, t.level, t.bucket) = (u.tenant_id, u.field, u.entity, u.level, u.bucket)
		RETURNING t.tenant_id, t.field, t.entity, t.level, t.bucket, t.xmin::text`
	args := []any{upd.tenant, upd.field, upd.entity, upd.level, upd.bucket, upd.state}
	if xmins != nil {
		q = `UPDATE feature_tiles t SET state = u.state
		FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], $6::bytea[], $7::text[])
			AS u(tenant_id, field, entity, level, bucket, state, x)
		WHERE (t.tenant_id, t.field, t.entity, t.level, t.bucket) = (u.tenant_id, u.field, u.entity, u.level, u.bucket)
			AND t.xmin = u.x::xid
		RETURNING t.tenant_id, t.field, t.entity, t.level, t.bucket, t.xmin::text`
		args = append(args, xmins)
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("update tiles: %w", err)
	}
	got, err := scanKeyXmins(rows, len(upd.tenant))
	if err != nil {
		return nil, fmt.Errorf("update tiles: %w", err)
	}
	return got, nil
}

// scanKeyXmins reads rows of (tile key, xmin as text).
func scanKeyXmins(rows pgx.Rows, n int) (map[tileKey]uint32, error) {
	defer rows.Close()
	got := make(map[tileKey]uint32, n)
	for rows.Next() {
		var k tileKey
		var x string
		if err := rows.Scan(&k.Tenant, &k.Field, &k.Entity, &k.Level, &k.Bucket, &x); err != nil {
			return nil, err
		}
		v, err := strconv.ParseUint(x, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("xmin %q: %w", x, err)
		}
		got[k] = uint32(v)
	}
	return got, rows.Err()
}

// insertInto inserts ins (insertTiles) and records each row inserted in
// out, bundle and xmin, for the tile cache; it returns how many rows it
// inserted and the keys that conflicted.
func insertInto(ctx context.Context, tx pgx.Tx, ins *tileArrays, out map[tileKey]cachedTile) (int, []tileKey, error) {
	inserted, raced, err := insertTiles(ctx, tx, ins)
	if err != nil {
		return 0, nil, err
	}
	for i := range ins.tenant {
		k := ins.key(i)
		if x, ok := inserted[k]; ok {
			out[k] = cachedTile{raw: ins.state[i], xmin: x}
		}
	}
	return len(inserted), raced, nil
}

// insertTiles inserts ins (in key order) and returns the xmin of each row
// inserted and the keys that conflicted with a row that exists (inserted
// meanwhile by another transaction, or, on the cached path, not in the
// cache), in key order.
func insertTiles(ctx context.Context, tx pgx.Tx, ins *tileArrays) (map[tileKey]uint32, []tileKey, error) {
	rows, err := tx.Query(ctx, `INSERT INTO feature_tiles (tenant_id, field, entity, level, bucket, state)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], $6::bytea[])
		ON CONFLICT DO NOTHING RETURNING tenant_id, field, entity, level, bucket, xmin::text`,
		ins.tenant, ins.field, ins.entity, ins.level, ins.bucket, ins.state)
	if err != nil {
		return nil, nil, fmt.Errorf("insert tiles: %w", err)
	}
	inserted, err := scanKeyXmins(rows, len(ins.tenant))
	if err != nil {
		return nil, nil, fmt.Errorf("insert tiles: %w", err)
	}
	var raced []tileKey
	for i := range ins.tenant {
		k := ins.key(i)
		if _, ok := inserted[k]; !ok {
			raced = append(raced, k)
		}
	}
	return inserted, raced, nil
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

// admitEntities enforces features.max_entities on the entities b tracks
// (see batch.track and batch.add): entities the tenant does not track yet
// are tracked while the tenant is under its limit; it returns those
// refused (the caller drops their tiles with dropRefused).
//
// The live path runs it in its own short transaction, beside the batch's
// tile transaction and committed before that one writes a tile: two batches that meet one new entity (the
// events topic spreads an entity over every partition) then wait for each
// other's entity row only for that short transaction, not for the whole
// tile write — that wait and the tenant's count row were the live path's
// main queue. An entity is thus tracked before its tiles commit; if the
// tile transaction then rolls back it is redone (the records are fetched
// again) and finds the entity tracked: tracked entities may run ahead of
// aggregated ones, never behind, so the limit errs on the side of refusing
// early. Task chunks run it inside their own transaction.
//
// The count row (feature_entity_counts) is read without a lock and only
// updated last, so concurrent batches do not queue on it either. That read
// may miss batches committing concurrently, so the update checks the count
// it writes (under the row lock, after them): over the limit, the
// admission rolls back to a savepoint and is redone with the count locked
// first (the serial way), which only a tenant at the edge of its limit
// takes. The limit is exact.
func (b *batch) admitEntities(ctx context.Context, tx pgx.Tx, lim limits, maxKey string) (map[entityRef]struct{}, error) {
	if len(b.entities) == 0 {
		return nil, nil
	}
	for _, exact := range []bool{false, true} {
		sp, err := tx.Begin(ctx) // a savepoint
		if err != nil {
			return nil, err
		}
		refused, err := b.admitOnce(ctx, sp, lim, maxKey, exact)
		if errors.Is(err, errEntityRace) && !exact {
			if err := sp.Rollback(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return refused, sp.Commit(ctx)
	}
	return nil, errEntityRace // not reached: the exact way does not race
}

// admitOnce is one attempt of admitEntities; exact locks the count rows
// first.
func (b *batch) admitOnce(ctx context.Context, tx pgx.Tx, lim limits, maxKey string, exact bool) (map[entityRef]struct{}, error) {
	refs := make([]entityRef, 0, len(b.entities))
	for r := range b.entities {
		refs = append(refs, r)
	}
	slices.SortFunc(refs, entityRef.compare)
	var tn, fl, en []string
	var tenants []string
	for _, r := range refs {
		tn, fl, en = append(tn, r.Tenant), append(fl, r.Field), append(en, r.Entity)
		if len(tenants) == 0 || tenants[len(tenants)-1] != r.Tenant {
			tenants = append(tenants, r.Tenant)
		}
	}
	rows, err := tx.Query(ctx, `SELECT u.t, u.f, u.e FROM unnest($1::text[], $2::text[], $3::text[]) AS u(t, f, e)
		WHERE NOT EXISTS (SELECT 1 FROM feature_entities x WHERE x.tenant_id = u.t AND x.field = u.f AND x.entity = u.e)`, tn, fl, en)
	if err != nil {
		return nil, fmt.Errorf("known entities: %w", err)
	}
	fresh, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (entityRef, error) {
		var e entityRef
		return e, r.Scan(&e.Tenant, &e.Field, &e.Entity)
	})
	if err != nil || len(fresh) == 0 {
		return nil, err
	}
	slices.SortFunc(fresh, entityRef.compare)
	have, err := entityCounts(ctx, tx, tenants, exact)
	if err != nil {
		return nil, err
	}
	refusedSet := make(map[entityRef]struct{})
	limit := make(map[string]int64)
	tn, fl, en = tn[:0], fl[:0], en[:0]
	for i := 0; i < len(fresh); {
		j := i
		for j < len(fresh) && fresh[j].Tenant == fresh[i].Tenant {
			j++
		}
		t := fresh[i].Tenant
		limit[t] = lim.Int(t, maxKey)
		n := min(int64(j-i), max(limit[t]-have[t], 0))
		for k := i; k < j; k++ {
			if int64(k-i) < n {
				tn, fl, en = append(tn, fresh[k].Tenant), append(fl, fresh[k].Field), append(en, fresh[k].Entity)
			} else {
				refusedSet[fresh[k]] = struct{}{}
			}
		}
		i = j
	}
	if len(tn) > 0 {
		added, err := trackEntities(ctx, tx, tn, fl, en)
		if err != nil {
			return nil, err
		}
		if err := countEntities(ctx, tx, added, limit); err != nil {
			return nil, err
		}
	}
	return refusedSet, nil
}

// entityCounts reads the tenants' entity counts; exact locks them (in
// tenant order, creating the missing rows).
func entityCounts(ctx context.Context, tx pgx.Tx, tenants []string, exact bool) (map[string]int64, error) {
	have := make(map[string]int64, len(tenants))
	q := `SELECT tenant_id, entities FROM feature_entity_counts WHERE tenant_id = ANY($1)`
	if exact {
		if _, err := tx.Exec(ctx, `INSERT INTO feature_entity_counts (tenant_id, entities)
			SELECT t, 0 FROM unnest($1::text[]) AS u(t) ORDER BY t COLLATE "C" ON CONFLICT DO NOTHING`, tenants); err != nil {
			return nil, fmt.Errorf("entity count: %w", err)
		}
		q += ` ORDER BY tenant_id COLLATE "C" FOR UPDATE`
	}
	rows, err := tx.Query(ctx, q, tenants)
	if err != nil {
		return nil, fmt.Errorf("entity count: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		var n int64
		if err := rows.Scan(&t, &n); err != nil {
			return nil, fmt.Errorf("entity count: %w", err)
		}
		have[t] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("entity count: %w", err)
	}
	return have, nil
}

// trackEntities inserts the entities (tenant, field, entity columns) and
// returns how many were new, per tenant.
func trackEntities(ctx context.Context, tx pgx.Tx, tn, fl, en []string) (map[string]int64, error) {
	rows, err := tx.Query(ctx, `INSERT INTO feature_entities (tenant_id, field, entity)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING RETURNING tenant_id`, tn, fl, en)
	if err != nil {
		return nil, fmt.Errorf("track entities: %w", err)
	}
	defer rows.Close()
	added := make(map[string]int64)
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("track entities: %w", err)
		}
		added[t]++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("track entities: %w", err)
	}
	return added, nil
}

// errEntityRace: batches committed concurrently took the room this one
// counted on under features.max_entities; redo it with the count locked.
var errEntityRace = errors.New("features: entity limit reached concurrently; redo with the count locked")

// countEntities adds the entities tracked (added, per tenant) to their
// tenants' counts, and fails with errEntityRace when a new count is over
// its tenant's limit.
func countEntities(ctx context.Context, tx pgx.Tx, added, limit map[string]int64) error {
	if len(added) == 0 {
		return nil
	}
	tenants := make([]string, 0, len(added))
	for t := range added {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	counts := make([]int64, len(tenants))
	for i, t := range tenants {
		counts[i] = added[t]
	}
	rows, err := tx.Query(ctx, `INSERT INTO feature_entity_counts (tenant_id, entities)
		SELECT * FROM unnest($1::text[], $2::bigint[]) AS u(t, n) ORDER BY u.t COLLATE "C"
		ON CONFLICT (tenant_id) DO UPDATE SET entities = feature_entity_counts.entities + excluded.entities
		RETURNING tenant_id, entities`, tenants, counts)
	if err != nil {
		return fmt.Errorf("entity count: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		var n int64
		if err := rows.Scan(&t, &n); err != nil {
			return fmt.Errorf("entity count: %w", err)
		}
		if n > limit[t] {
			return errEntityRace
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("entity count: %w", err)
	}
	return nil
}

// dropRefused removes the tiles of refused entities and returns how many
// tile updates that refused.
func (b *batch) dropRefused(refused map[entityRef]struct{}) int {
	if len(refused) == 0 {
		return 0
	}
	n := 0
	for k, row := range b.tiles {
		if _, ok := refused[entityRef{k.Tenant, k.Field, k.Entity}]; ok {
			delete(b.tiles, k)
			n += len(row)
		}
	}
	return n
}
