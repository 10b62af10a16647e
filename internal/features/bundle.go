package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/bulwark-ledger/bulwark/internal/features/tile"
)

// A tile row holds the tiles of every feature (and version) of one tenant
// that share an entity field, for one entity, level and bucket: a bundle.
// An event touches one row per level whatever the number of features on
// its entity (20 features × 4 levels would otherwise be 80 rows), which
// is what makes ingest cost independent of the feature count. Entries of
// retired versions stay in the bundle until the row expires with its
// level's retention; reads ignore them.
//
// Encoding: uvarint(entries), then per entry, sorted by (name, version):
// uvarint(len(name)) name, varint(version), varint(newest µs),
// uvarint(len(state)) state (tile.State.MarshalBinary).

type fv struct {
	Name    string
	Version int32
}

func (a fv) compare(b fv) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return int(a.Version) - int(b.Version)
}

type bundleEntry struct {
	fv
	Newest int64
	State  []byte
}

// maxBundleEntries bounds a decoded bundle: 10,000 features per tenant
// (features.max_definitions' bound) with a few versions each.
const maxBundleEntries = 50_000

var errBundle = errors.New("features: corrupt tile bundle")

func encodeBundle(es []bundleEntry) []byte {
	n := binary.MaxVarintLen64
	for _, e := range es {
		n += len(e.Name) + len(e.State) + 4*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		b = binary.AppendUvarint(b, uint64(len(e.Name)))
		b = append(b, e.Name...)
		b = binary.AppendVarint(b, int64(e.Version))
		b = binary.AppendVarint(b, e.Newest)
		b = binary.AppendUvarint(b, uint64(len(e.State)))
		b = append(b, e.State...)
	}
	return b
}

func decodeBundle(b []byte) ([]bundleEntry, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxBundleEntries {
		return nil, errBundle
	}
	b = b[k:]
	out := make([]bundleEntry, 0, n)
	for range n {
		var e bundleEntry
		var ok bool
		var name []byte
		if name, b, ok = bundleBytes(b); !ok {
			return nil, errBundle
		}
		e.Name = string(name)
		v, k := binary.Varint(b)
		if k <= 0 || v != int64(int32(v)) {
			return nil, errBundle
		}
		e.Version, b = int32(v), b[k:]
		if e.Newest, k = binary.Varint(b); k <= 0 {
			return nil, errBundle
		}
		b = b[k:]
		if e.State, b, ok = bundleBytes(b); !ok {
			return nil, errBundle
		}
		out = append(out, e)
	}
	if len(b) != 0 {
		return nil, errBundle
	}
	return out, nil
}

func bundleBytes(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// find returns the entry of f, if any.
func findEntry(es []bundleEntry, f fv) (bundleEntry, bool) {
	i, ok := slices.BinarySearchFunc(es, f, func(e bundleEntry, f fv) int { return e.compare(f) })
	if !ok {
		return bundleEntry{}, false
	}
	return es[i], true
}

// mergeBundle merges the accumulated states of add into the bundle old
// (nil: a new row) and returns the new encoding.
func mergeBundle(old []bundleEntry, add map[fv]*tileAcc) ([]byte, error) {
	out := make([]bundleEntry, len(old), len(old)+len(add)) // room for every insert
	copy(out, old)
	for f, a := range add {
		i, found := slices.BinarySearchFunc(out, f, func(e bundleEntry, f fv) int { return e.compare(f) })
		st := a.st
		newest := a.newest
		if found {
			merged := tile.NewState()
			if err := merged.UnmarshalBinary(out[i].State); err != nil {
				return nil, fmt.Errorf("decode tile %s v%d: %w", f.Name, f.Version, err)
			}
			merged.Merge(st)
			st, newest = merged, max(newest, out[i].Newest)
		}
		raw, err := st.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode tile: %w", err)
		}
		e := bundleEntry{fv: f, Newest: newest, State: raw}
		if found {
			out[i] = e
		} else {
			out = slices.Insert(out, i, e)
		}
	}
	return encodeBundle(out), nil
}
