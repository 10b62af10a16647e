package featurebench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Sampling PostgreSQL: where the database's time goes during a phase.
const (
	samplePoll = 20 * time.Millisecond
	// sampleQueryChars is the prefix of a statement that names it.
	sampleQueryChars = 70
	// maxSampleKeys bounds the distinct statements counted.
	maxSampleKeys = 1000
	topStatements = 6
)

// pgSampler counts the active statements of the database (pg_stat_activity)
// every samplePoll, with what they wait on: a sampling profile of the
// database's time.
type pgSampler struct {
	counts  map[string]int
	samples int
}

// run samples until ctx ends.
func (s *pgSampler) run(ctx context.Context, pool *pgxpool.Pool) {
	s.counts = make(map[string]int)
	for ctx.Err() == nil {
		rows, err := pool.Query(ctx, `SELECT regexp_replace(left(query, $1), '\s+', ' ', 'g'),
			coalesce(wait_event_type || ':' || wait_event, 'cpu')
			FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND datname = current_database()`, sampleQueryChars)
		if err == nil {
			for rows.Next() {
				var q, w string
				if rows.Scan(&q, &w) == nil {
					k := strings.TrimSpace(q) + " [" + w + "]"
					if _, ok := s.counts[k]; ok || len(s.counts) < maxSampleKeys {
						s.counts[k]++
					}
				}
			}
			rows.Close()
			if rows.Err() == nil {
				s.samples++
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(samplePoll):
		}
	}
}

// top returns the most frequent statements as "share: statement [wait]",
// share being the mean number of sessions running it (1.0 = one session
// all the time).
func (s *pgSampler) top() []string {
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range s.counts {
		all = append(all, kv{k, n})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(b.n, a.n) })
	var out []string
	for _, x := range all[:min(topStatements, len(all))] {
		out = append(out, fmt.Sprintf("%.2f sessions: %s", float64(x.n)/float64(max(s.samples, 1)), x.k))
	}
	return out
}
