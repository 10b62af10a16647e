package control

import (
	"fmt"
	"time"
)

// Snapshot is an immutable view of every setting at one version. Reads are
// two map lookups and a slice index: no locks, no allocation.
type Snapshot struct {
	version  int64
	loadedAt time.Time
	index    map[string]int // key name → position in the value slices
	defs     []*keyDef
	base     []Value            // global override, else default
	tenants  map[string][]Value // effective values of tenants with overrides
	// superseded is closed when a newer snapshot replaces this one, so that
	// a waiter (a paused rate limiter) wakes on any change without polling.
	superseded chan struct{}
}

// override is one stored row.
type override struct {
	tenant, key, value string
}

// buildSnapshot resolves rows over the defaults. Rows naming unknown keys (a
// newer binary defined them) or holding values the registry now rejects are
// skipped, and their count returned, so that one bad row never blocks the
// rest of a change.
func buildSnapshot(defs []*keyDef, version int64, rows []override, now time.Time) (*Snapshot, int) {
	s := &Snapshot{
		version: version, loadedAt: now, defs: defs,
		index:      make(map[string]int, len(defs)),
		base:       make([]Value, len(defs)),
		tenants:    make(map[string][]Value),
		superseded: make(chan struct{}),
	}
	for i, d := range defs {
		s.index[d.Name] = i
		s.base[i] = d.def
	}
	bad := 0
	type parsed struct {
		tenant string
		i      int
		v      Value
	}
	own := make([]parsed, 0, len(rows))
	for _, r := range rows {
		i, ok := s.index[r.key]
		if !ok {
			bad++
			continue
		}
		v, err := defs[i].parse(r.value)
		if err != nil {
			bad++
			continue
		}
		if r.tenant == GlobalTenant {
			s.base[i] = v
		} else {
			own = append(own, parsed{r.tenant, i, v})
		}
	}
	for _, p := range own { // after every global row, so tenants start from the final base
		vals, ok := s.tenants[p.tenant]
		if !ok {
			vals = append([]Value(nil), s.base...)
			s.tenants[p.tenant] = vals
		}
		vals[p.i] = p.v
	}
	return s, bad
}

// Version is the store version this snapshot reflects (0: defaults only).
func (s *Snapshot) Version() int64 { return s.version }

// LoadedAt is when this snapshot was read from the store.
func (s *Snapshot) LoadedAt() time.Time { return s.loadedAt }

// Superseded returns a channel closed when a newer snapshot is applied.
func (s *Snapshot) Superseded() <-chan struct{} { return s.superseded }

// Value returns the effective value of key for tenant: the tenant's
// override, else the global override, else the default. ok is false for an
// unknown key.
func (s *Snapshot) Value(tenant, key string) (Value, bool) {
	i, ok := s.index[key]
	if !ok {
		return Value{}, false
	}
	if vals, ok := s.tenants[tenant]; ok {
		return vals[i], true
	}
	return s.base[i], true
}

// must returns the value of a key that the caller knows exists with type t;
// anything else is a programmer error.
func (s *Snapshot) must(tenant, key string, t Type) Value {
	v, ok := s.Value(tenant, key)
	if !ok || (v.typ != t && !(t == Float && v.typ == Int)) {
		panic(fmt.Sprintf("control: key %q is not a defined %s setting", key, t))
	}
	return v
}

// Int returns an Int setting; it panics if key is not a defined Int key.
func (s *Snapshot) Int(tenant, key string) int64 { return s.must(tenant, key, Int).i }

// Float returns a Float (or Int) setting; it panics otherwise.
func (s *Snapshot) Float(tenant, key string) float64 { return s.must(tenant, key, Float).Float() }

// Bool returns a Bool setting; it panics otherwise.
func (s *Snapshot) Bool(tenant, key string) bool { return s.must(tenant, key, Bool).Bool() }

// Duration returns a Duration setting; it panics otherwise.
func (s *Snapshot) Duration(tenant, key string) time.Duration {
	return s.must(tenant, key, Duration).Duration()
}

// Text returns a Text setting; it panics otherwise.
func (s *Snapshot) Text(tenant, key string) string { return s.must(tenant, key, Text).s }

// Tenants returns the tenants with at least one override of their own.
func (s *Snapshot) Tenants() []string {
	out := make([]string, 0, len(s.tenants))
	for t := range s.tenants {
		out = append(out, t)
	}
	return out
}
