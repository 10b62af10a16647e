package features

import (
	"testing"
	"time"
)

// TestKnownEntitiesWaitForTheFlush: an entity seen tracked becomes known
// only once a WAL position read after it was seen has been flushed, under
// the same postmaster; another postmaster (a restart, a failover) makes
// the set forget everything; the bound holds.
func TestKnownEntitiesWaitForTheFlush(t *testing.T) {
	boot := time.Unix(1_700_000_000, 0)
	ref := func(e string) entityRef { return entityRef{"acme", "card", e} }
	k := newKnownEntities(3)
	k.observe(k.mark(), walPosition{insert: 50, flush: 50, started: boot}) // the first read
	isKnown := func(e string) bool {
		set := map[entityRef]struct{}{ref(e): {}}
		return k.drop(set) == 1
	}

	// Seen by an admission whose WAL read came before the add: the read
	// may predate the commit, so it must not stamp the group.
	m := k.mark()
	k.add([]entityRef{ref("a")})
	k.observe(m, walPosition{insert: 100, flush: 1_000, started: boot})
	if isKnown("a") {
		t.Fatal("a is known from a WAL position read before it was seen")
	}
	// The next admission stamps it (insert 200) but the flush is behind.
	k.observe(k.mark(), walPosition{insert: 200, flush: 150, started: boot})
	if isKnown("a") {
		t.Fatal("a is known before the WAL was flushed past its stamp")
	}
	// Flushed past 200: known.
	k.observe(k.mark(), walPosition{insert: 300, flush: 200, started: boot})
	if !isKnown("a") {
		t.Fatal("a is not known once the WAL was flushed past its stamp")
	}

	// Stamped, then another postmaster (positions may be reused, a
	// replica may lack what was flushed): everything is forgotten.
	k.add([]entityRef{ref("b")})
	k.observe(k.mark(), walPosition{insert: 400, flush: 300, started: boot})
	k.observe(k.mark(), walPosition{insert: 500, flush: 10_000, started: boot.Add(time.Minute)})
	k.observe(k.mark(), walPosition{insert: 600, flush: 10_000, started: boot.Add(time.Minute)})
	if isKnown("b") {
		t.Fatal("b is known from a stamp of a postmaster that restarted")
	}
	if isKnown("a") {
		t.Fatal("a is still known under another postmaster")
	}
	if len(k.pending) != 0 {
		t.Fatalf("%d groups still pending after the restart", len(k.pending))
	}

	// The bound: 3 entities at most.
	k.add([]entityRef{ref("c"), ref("d"), ref("e")})
	k.observe(k.mark(), walPosition{insert: 700, flush: 600, started: boot.Add(time.Minute)})
	k.observe(k.mark(), walPosition{insert: 800, flush: 700, started: boot.Add(time.Minute)})
	if n := k.size(); n != 3 {
		t.Fatalf("%d entities known, want the bound 3", n)
	}
}
