package features

import (
	"sync"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/features/tile"
)

// tileCache remembers, for the tile rows this process's live path wrote
// last, the bundle it wrote and the xmin of that row version (the id of
// the transaction that wrote it). The next batch that touches such a row
// merges into the remembered bundle and writes with
//
//	UPDATE … WHERE key = … AND xmin = <remembered>
//
// instead of first reading the row with SELECT … FOR UPDATE, the live
// path's costliest statement (a lock is a WAL record per row, and the
// read a second index lookup). The cache is never trusted, only checked:
// an xmin that still matches proves the row is the version the bundle was
// read from, as no other transaction can have written a version with that
// xmin. Any other writer (a backfill or recompute chunk, another process
// after a rebalance, the pruning of expired tiles, a commit whose outcome
// was lost) changes or removes the row, the UPDATE skips it, and the row is
// redone on the locking path. A wrong entry costs one redo, never a wrong
// count.
//
// xmin is 32 bits and wraps after about 4 billion transactions; entries
// are dropped after maxCachedTileAge (at 10,000 transactions per second a
// wrap takes five days), so a remembered xmin cannot meet a newer version
// with the same number.
type tileCache struct {
	mu    sync.Mutex
	m     map[tileKey]cachedTile // guarded by mu
	bytes int                    // guarded by mu: sum of cap(raw) and overheads
	limit int
	born  time.Time // guarded by mu: when m was last cleared
	now   func() time.Time
	// newest is the latest bucket written per level, for evictOld.
	newest [numLevels]int64 // guarded by mu
}

// numLevels is the tile levels (1 s, 1 min, 1 h, 1 d: tile.Buckets).
const numLevels = tile.Levels

type cachedTile struct {
	raw  []byte // the bundle as written (encodeBundle)
	xmin uint32
}

// maxCachedTileAge bounds an entry's age (see tileCache on xmin wrap).
const maxCachedTileAge = time.Hour

// tileCacheOverhead is the memory of an entry besides its bundle: the map
// slot, the key's strings and headers (an estimate, for the byte bound).
const tileCacheOverhead = 160

func newTileCache(limit int) *tileCache {
	return &tileCache{m: make(map[tileKey]cachedTile), limit: limit, born: time.Now(), now: time.Now}
}

// get returns the entry of k. A nil cache holds nothing.
func (c *tileCache) get(k tileKey) (cachedTile, bool) {
	if c == nil {
		return cachedTile{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire()
	t, ok := c.m[k]
	return t, ok
}

// putAll records what a committed transaction wrote. Past the byte limit
// it first drops the rows of past seconds and minutes (written again only
// by late events), then, if that is not enough, starts over (the live
// path then reads rows again until the hot ones are back): bounded
// memory, no per-entry bookkeeping.
func (c *tileCache) putAll(written map[tileKey]cachedTile) {
	if c == nil || c.limit <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire()
	for k, t := range written {
		if old, ok := c.m[k]; ok {
			c.bytes -= cap(old.raw) + tileCacheOverhead
		}
		c.m[k] = t
		c.bytes += cap(t.raw) + tileCacheOverhead
		if k.Level >= 0 && int(k.Level) < numLevels {
			c.newest[k.Level] = max(c.newest[k.Level], k.Bucket)
		}
	}
	if c.bytes > c.limit {
		c.evictOld()
	}
	if c.bytes > c.limit*9/10 {
		c.clearLocked()
	}
}

// evictOld drops the rows of the 1-second and 1-minute levels older than
// the newest bucket of their level: with events near real time, the bulk
// of a full cache, and rows the live path is done with.
func (c *tileCache) evictOld() {
	for k, t := range c.m {
		if k.Level < 2 && k.Bucket < c.newest[k.Level] {
			c.bytes -= cap(t.raw) + tileCacheOverhead
			delete(c.m, k)
		}
	}
}

// clear empties the cache (a new consumer session: its partitions may
// have been written by others meanwhile; the xmin check would catch it,
// this only saves the redos).
func (c *tileCache) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
}

func (c *tileCache) expire() {
	if c.now().Sub(c.born) > maxCachedTileAge {
		c.clearLocked()
	}
}

func (c *tileCache) clearLocked() {
	c.m = make(map[tileKey]cachedTile)
	c.bytes = 0
	c.born = c.now()
	c.newest = [numLevels]int64{}
}

// len is the number of entries (tests).
func (c *tileCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
