package features

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

type fixedLimits map[string]int64

func (f fixedLimits) Int(_, key string) int64 { return f[key] }

// TestPrune: the janitor drops tile rows no cover reads any more and
// events past retention, and keeps the rest.
func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	now := time.Now()
	e, err := New(pool, fixedLimits{"features.allowed_lateness_seconds": 0}, nil, Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	sec := now.Unix()
	_, err = pool.Exec(ctx, `INSERT INTO feature_tiles (tenant_id, field, entity, level, bucket, state) VALUES
		('acme', 'card', 'c', 0, $2, ''),            -- 1s tile 2 h old: dropped
		('acme', 'card', 'c', 0, $1, ''),            -- 1s tile of this hour: kept
		('acme', 'card', 'c', 1, $2 / 60 * 60, ''),  -- 1m tile 2 h old: kept
		('acme', 'card', 'c', 3, $3, '')             -- 1d tile 100 days old: dropped`,
		sec, sec-7200, (sec-100*86400)/86400*86400)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO feature_events (tenant_id, id, part, event_time, accepted_at, body) VALUES
		('acme', 'old', 0, now() - interval '100 days', now(), ''), ('acme', 'new', 0, now(), now(), '')`)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.prune(ctx); err != nil {
		t.Fatal(err)
	}
	var tiles, events int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM feature_tiles), (SELECT count(*) FROM feature_events)`).Scan(&tiles, &events); err != nil {
		t.Fatal(err)
	}
	if tiles != 2 || events != 1 {
		t.Fatalf("after prune: %d tiles (want 2), %d events (want 1)", tiles, events)
	}
}

// FuzzDecodeBundle: a tile row's bytes decode to entries or an error,
// never a panic, and decoded entries survive an encode/decode round trip.
func FuzzDecodeBundle(f *testing.F) {
	f.Add(encodeBundle(nil))
	f.Add(encodeBundle([]bundleEntry{{fv: fv{"a", 1}, Newest: 5, State: []byte{1, 2}}, {fv: fv{"b", 2}, Newest: -1}}))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := decodeBundle(b)
		if err != nil {
			return
		}
		again, err := decodeBundle(encodeBundle(es))
		if err != nil || len(again) != len(es) {
			t.Fatalf("round trip of %d entries: %d, %v", len(es), len(again), err)
		}
		for i := range es {
			if es[i].fv != again[i].fv || es[i].Newest != again[i].Newest || string(es[i].State) != string(again[i].State) {
				t.Fatalf("entry %d: %+v became %+v", i, es[i], again[i])
			}
		}
	})
}
