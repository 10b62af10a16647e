package features

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

type fixedLimits map[string]int64

func (f fixedLimits) Int(_, key string) int64 { return f[key] }

// TestPrune: the janitor drops tiles no cover reads any more, tiles of
// versions retired over a minute ago and events past retention, and
// keeps the rest.
func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	now := time.Now()
	e, err := New(pool, fixedLimits{"features.allowed_lateness_seconds": 0}, nil, Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO feature_versions (tenant_id, name, version, source, entity, definition, state, cutoff_seq, cutoff_at, retired_at)
		VALUES ('acme', 'old', 1, 'events', 'card', '{}', 'retired', 0, now(), now() - interval '2 minutes'),
		       ('acme', 'new', 1, 'events', 'card', '{}', 'active', 0, now(), NULL)`)
	if err != nil {
		t.Fatal(err)
	}
	sec := now.Unix()
	_, err = pool.Exec(ctx, `INSERT INTO feature_tiles (tenant_id, feature, version, entity, level, bucket, newest, state) VALUES
		('acme', 'old', 1, 'c', 2, $1, 0, ''),            -- retired version: dropped
		('acme', 'new', 1, 'c', 0, $2, 0, ''),            -- 1s tile 2 h old: dropped
		('acme', 'new', 1, 'c', 0, $1, 0, ''),            -- 1s tile of this hour: kept
		('acme', 'new', 1, 'c', 1, $2 / 60 * 60, 0, ''),  -- 1m tile 2 h old: kept
		('acme', 'new', 1, 'c', 3, $3, 0, '')             -- 1d tile 100 days old: dropped`,
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
