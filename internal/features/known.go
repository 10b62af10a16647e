package features

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// knownEntities remembers the entities the live path knows are tracked
// (feature_entities) durably, so a batch's admission probes only the
// others: the probe, one index lookup per distinct entity of every batch,
// was a fifth of PostgreSQL's time in the live path.
//
// Only durable rows may be remembered: a row that a PostgreSQL crash
// loses (its transaction committed asynchronously, not flushed) would
// otherwise stay "known" in a process that outlived the crash, never be
// tracked again, and the tenant's entity count would fall behind, which
// lets features.max_entities admit too many. So an entity seen tracked
// (found by the probe or tracked by the admission) waits, pending, until
// the WAL is flushed past the point where it was seen:
//
//  1. after the admission commits, its entities are pending, unstamped;
//  2. the next admission reads the WAL insert position before it probes,
//     which is past every commit that ended before that read, and stamps
//     the pending entities added before it with it;
//  3. an admission that reads a WAL flush position at or past a stamp
//     moves those entities into the known set.
//
// WAL positions restart from the last flushed record after a crash, so a
// stamp counts only under the postmaster that issued it (its start time).
// When the start time changes (a restart, or a failover to a replica that
// may lack what the old primary flushed), everything is forgotten and
// probed again. Nothing deletes from feature_entities.
type knownEntities struct {
	mu      sync.Mutex
	known   map[entityRef]struct{}
	pending []pendingEntities
	seq     uint64    // of the next pending group
	started time.Time // the postmaster's start time the set is valid under
	limit   int
}

type pendingEntities struct {
	seq  uint64
	refs []entityRef
	lsn  uint64 // 0: not stamped
}

// maxKnownEntities bounds the set (about 100 bytes an entity): past it,
// entities are no longer added and the probe covers the rest.
const maxKnownEntities = 1_000_000

func newKnownEntities(limit int) *knownEntities {
	return &knownEntities{known: make(map[entityRef]struct{}), limit: limit}
}

// walPosition is where PostgreSQL's WAL stands.
type walPosition struct {
	insert, flush uint64
	started       time.Time // pg_postmaster_start_time
}

func readWAL(ctx context.Context, tx pgx.Tx) (walPosition, error) {
	var p walPosition
	var ins, fl int64
	err := tx.QueryRow(ctx, `SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint,
		(pg_current_wal_flush_lsn() - '0/0')::bigint, pg_postmaster_start_time()`).Scan(&ins, &fl, &p.started)
	if err != nil {
		return p, fmt.Errorf("wal position: %w", err)
	}
	p.insert, p.flush = uint64(ins), uint64(fl)
	return p, nil
}

// mark returns the sequence before which pending groups may be stamped by
// a WAL position read after this call.
func (k *knownEntities) mark() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.seq
}

// observe stamps the unstamped pending groups added before mark with p's
// insert position, and promotes the groups whose stamp p has flushed.
func (k *knownEntities) observe(mark uint64, p walPosition) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.started.Equal(p.started) {
		// Another postmaster: stamps and flushes of the old one mean
		// nothing here. Groups not stamped yet were seen before this read,
		// possibly on the old server: dropped too.
		k.started = p.started
		clear(k.known)
		clear(k.pending)
		k.pending = k.pending[:0]
		return
	}
	keep := k.pending[:0]
	for _, g := range k.pending {
		if g.lsn == 0 && g.seq < mark {
			g.lsn = p.insert
		}
		if g.lsn != 0 && g.lsn <= p.flush {
			for _, r := range g.refs {
				if len(k.known) >= k.limit {
					break
				}
				k.known[r] = struct{}{}
			}
			continue
		}
		keep = append(keep, g)
	}
	clear(k.pending[len(keep):])
	k.pending = keep
}

// drop removes the known entities from set and returns how many it
// removed.
func (k *knownEntities) drop(set map[entityRef]struct{}) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for r := range set {
		if _, ok := k.known[r]; ok {
			delete(set, r)
			n++
		}
	}
	return n
}

// add makes refs pending: an admission saw them tracked and committed.
func (k *knownEntities) add(refs []entityRef) {
	if len(refs) == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pending = append(k.pending, pendingEntities{seq: k.seq, refs: refs})
	k.seq++
}

// size returns how many entities are known.
func (k *knownEntities) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.known)
}
