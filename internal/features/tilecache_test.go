package features

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
	"github.com/bulwark-ledger/bulwark/internal/features/tile"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

// TestTileCacheBounds: the cache holds what committed transactions wrote,
// and starts over past its byte limit and after maxCachedTileAge (xmin
// wraps).
func TestTileCacheBounds(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newTileCache(3 * (100 + tileCacheOverhead))
	c.now = func() time.Time { return now }
	c.born = now
	k := func(i int) tileKey { return tileKey{"acme", "card", fmt.Sprint("c", i), 1, 60} }
	raw := make([]byte, 100)
	c.putAll(map[tileKey]cachedTile{k(1): {raw, 7}, k(2): {raw, 8}})
	if got, ok := c.get(k(1)); !ok || got.xmin != 7 {
		t.Fatalf("get k1: %+v %v", got, ok)
	}
	c.putAll(map[tileKey]cachedTile{k(1): {raw, 9}}) // replaces, does not add
	if c.len() != 2 || c.bytes != 2*(100+tileCacheOverhead) {
		t.Fatalf("after replace: %d entries, %d bytes", c.len(), c.bytes)
	}
	c.putAll(map[tileKey]cachedTile{k(3): {raw, 1}, k(4): {raw, 1}}) // 4 entries > limit of 3
	if c.len() != 0 || c.bytes != 0 {
		t.Fatalf("over the byte limit: %d entries, %d bytes; want a fresh cache", c.len(), c.bytes)
	}
	// Over the limit, rows of past seconds and minutes go first.
	c = newTileCache(4 * (100 + tileCacheOverhead))
	c.now = func() time.Time { return now }
	c.born = now
	sec := func(e string, b int64) tileKey { return tileKey{"acme", "card", e, 0, b} }
	hour := tileKey{"acme", "card", "c1", 2, 3600}
	c.putAll(map[tileKey]cachedTile{sec("a", 10): {raw, 1}, sec("b", 10): {raw, 1}, hour: {raw, 1}})
	c.putAll(map[tileKey]cachedTile{sec("a", 11): {raw, 1}, sec("b", 11): {raw, 1}}) // 5 > 4
	if _, ok := c.get(sec("a", 10)); ok || c.len() != 3 {
		t.Fatalf("after eviction: %d entries, a@10 kept: %v; want the second 10 rows gone", c.len(), ok)
	}
	if _, ok := c.get(hour); !ok {
		t.Fatal("the hour row was evicted with the past seconds")
	}
	c.putAll(map[tileKey]cachedTile{k(1): {raw, 1}})
	now = now.Add(maxCachedTileAge + time.Second)
	if _, ok := c.get(k(1)); ok {
		t.Fatal("an entry older than maxCachedTileAge was served")
	}
	var nilCache *tileCache
	if _, ok := nilCache.get(k(1)); ok {
		t.Fatal("a nil cache served an entry")
	}
	nilCache.putAll(map[tileKey]cachedTile{k(1): {raw, 1}})
	nilCache.clear()
}

// countBatch is a batch adding n events to one feature of each key.
func countBatch(keys []tileKey, n int) *batch {
	b := newBatch()
	f := fv{"pay_count", 1}
	at := time.Unix(1_700_000_000, 0)
	for _, k := range keys {
		st := tile.NewState()
		for i := range n {
			st.Add(spec.IntValue(spec.IntFromInt64(1)), at, fmt.Sprint(k.Entity, "-", i))
		}
		b.tiles[k] = map[fv]*tileAcc{f: {st: st, newest: at.UnixMicro()}}
	}
	return b
}

// tileCount reads the count of feature pay_count in k's row.
func tileCount(t *testing.T, pool *pgxpool.Pool, k tileKey) int64 {
	t.Helper()
	var raw []byte
	if err := pool.QueryRow(context.Background(), `SELECT state FROM feature_tiles
		WHERE tenant_id = $1 AND field = $2 AND entity = $3 AND level = $4 AND bucket = $5`,
		k.Tenant, k.Field, k.Entity, k.Level, k.Bucket).Scan(&raw); err != nil {
		t.Fatalf("tile %v: %v", k, err)
	}
	es, err := decodeBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := findEntry(es, fv{"pay_count", 1})
	if !ok {
		t.Fatalf("tile %v: no pay_count entry", k)
	}
	var st tile.State
	if err := st.UnmarshalBinary(e.State); err != nil {
		t.Fatal(err)
	}
	return st.Count()
}

// writeCommit writes b through the cache in its own transaction and fills
// the cache on commit, as the live path does.
func writeCommit(t *testing.T, pool *pgxpool.Pool, c *tileCache, b *batch) tileWrites {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var st tileWrites
	written, err := b.write(ctx, tx, c, &st)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c.putAll(written)
	return st
}

// TestTileCacheNeverMiscounts: rows written through the cache are updated
// without a read while nobody else writes them, and every other writer
// (a task's locking write, the pruning of a row, a transaction that
// rolled back after the cache was filled, a wrong entry) is caught by the
// xmin check: the counts stay exact in every case.
func TestTileCacheNeverMiscounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	c := newTileCache(1 << 20)
	hot, other, gone := tileKey{"acme", "card", "hot", 1, 60}, tileKey{"acme", "card", "other", 1, 60}, tileKey{"acme", "card", "gone", 1, 60}
	keys := []tileKey{gone, hot, other}

	st := writeCommit(t, pool, c, countBatch(keys, 2)) // all new: inserted
	if st.inserted != 3 || st.hits != 0 {
		t.Fatalf("first write: %+v, want 3 inserted", st)
	}
	st = writeCommit(t, pool, c, countBatch(keys, 3)) // all cached: no read
	if st.hits != 3 || st.stale != 0 {
		t.Fatalf("second write: %+v, want 3 cached", st)
	}

	// Another writer (a backfill chunk: the locking path, no cache) adds
	// to "hot"; the pruning deletes "gone".
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := countBatch([]tileKey{hot}, 10).writeTiles(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM feature_tiles WHERE entity = 'gone'`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A wrong entry for "other" (a commit whose outcome was lost): an xmin
	// no version of the row has.
	o, _ := c.get(other)
	o.xmin++
	c.putAll(map[tileKey]cachedTile{other: o})

	st = writeCommit(t, pool, c, countBatch(keys, 1))
	if st.stale != 3 || st.hits != 0 {
		t.Fatalf("third write: %+v, want 3 stale entries redone", st)
	}
	for k, want := range map[tileKey]int64{hot: 2 + 3 + 10 + 1, other: 2 + 3 + 1, gone: 1} {
		if got := tileCount(t, pool, k); got != want {
			t.Errorf("%s: count %d, want %d", k.Entity, got, want)
		}
	}

	// A transaction that wrote through the cache and rolled back leaves
	// the entries of the last commit valid.
	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := countBatch(keys, 100).write(ctx, tx, c, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	st = writeCommit(t, pool, c, countBatch(keys, 1))
	if st.hits != 3 {
		t.Fatalf("after a rollback: %+v, want 3 cached", st)
	}
	for k, want := range map[tileKey]int64{hot: 17, other: 7, gone: 2} {
		if got := tileCount(t, pool, k); got != want {
			t.Errorf("%s after the rollback: count %d, want %d", k.Entity, got, want)
		}
	}
}

// TestTileStatesUseLZ4: the tile bundles of busy entities pass the TOAST
// threshold and are rewritten by every batch; migration 00500 makes
// PostgreSQL compress them with lz4 rather than pglz (about 4× cheaper).
func TestTileStatesUseLZ4(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	var lz4 bool
	err := pool.QueryRow(ctx, `SELECT 'lz4' = ANY(enumvals) FROM pg_settings
		WHERE name = 'default_toast_compression'`).Scan(&lz4)
	if errors.Is(err, pgx.ErrNoRows) {
		t.Skip("this PostgreSQL has no default_toast_compression (before 14): the migration keeps pglz")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !lz4 {
		t.Skip("this PostgreSQL is built without lz4: the migration keeps pglz (and says so in a notice)")
	}
	// A bundle-sized state that compresses (as HyperLogLog registers do).
	big := make([]byte, 8192)
	for i := range big {
		big[i] = byte(i % 7)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO feature_tiles (tenant_id, field, entity, level, bucket, state)
		VALUES ('acme', 'card', 'busy', 2, 3600, $1)`, big); err != nil {
		t.Fatal(err)
	}
	var method string
	if err := pool.QueryRow(ctx, `SELECT coalesce(pg_column_compression(state), 'none') FROM feature_tiles
		WHERE entity = 'busy'`).Scan(&method); err != nil {
		t.Fatal(err)
	}
	if method != "lz4" {
		t.Fatalf("a large tile state is stored with %q compression, want lz4", method)
	}
}
