package features

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
	"github.com/bulwark-ledger/bulwark/internal/features/tile"
)

// Version states.
const (
	StateBuilding = "building"
	StateActive   = "active"
	StateRetired  = "retired"
)

// Sources.
const (
	SourceEvents = "events"
	SourceLedger = "ledger"
)

// version is one stored feature version, compiled for use.
type version struct {
	Tenant    string
	Name      string
	Version   int32
	State     string
	Def       spec.Definition
	Canonical []byte
	CutoffSeq int64
	CutoffAt  time.Time
	CreatedAt time.Time
	BuiltAt   *time.Time
	filter    *spec.Filter
	longest   time.Duration
	// minLevel is the finest tile level a cover of one of its windows
	// reads: the levels below it are never written.
	minLevel tile.Level
}

func compile(v *version) error {
	def, err := spec.DecodeDefinition(v.Canonical)
	if err != nil {
		return fmt.Errorf("feature %s/%s v%d: stored definition: %w", v.Tenant, v.Name, v.Version, err)
	}
	v.Def = def
	v.filter = def.CompiledFilter()
	v.minLevel = tile.Day
	for _, w := range def.Windows {
		v.longest = max(v.longest, time.Duration(w))
		v.minLevel = min(v.minLevel, tile.Resolution(w))
	}
	return nil
}

const versionCols = `tenant_id, name, version, state, definition, cutoff_seq, cutoff_at, created_at, built_at`

func scanVersions(rows pgx.Rows) ([]*version, error) {
	defer rows.Close()
	var out []*version
	for rows.Next() {
		v := &version{}
		if err := rows.Scan(&v.Tenant, &v.Name, &v.Version, &v.State, &v.Canonical, &v.CutoffSeq, &v.CutoffAt,
			&v.CreatedAt, &v.BuiltAt); err != nil {
			return nil, err
		}
		if err := compile(v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// liveVersions returns the versions of tenants that are not retired,
// ordered by tenant, name, version.
func liveVersions(ctx context.Context, q querier, tenants []string) ([]*version, error) {
	rows, err := q.Query(ctx, `SELECT `+versionCols+` FROM feature_versions
		WHERE tenant_id = ANY($1) AND state <> 'retired' ORDER BY tenant_id, name, version`, tenants)
	if err != nil {
		return nil, fmt.Errorf("load feature versions: %w", err)
	}
	return scanVersions(rows)
}

// versionCache keeps each tenant's live versions with the generation they
// were loaded at (feature_tenants.generation): the worker reloads a tenant
// only when its generation moved.
type versionCache struct {
	mu      sync.Mutex
	tenants map[string]cachedTenant // guarded by mu
}

type cachedTenant struct {
	gen      int64
	versions []*version
}

// maxCachedTenants bounds the cache: beyond it, it is cleared (tenants
// reload on their next use); 10,000 tenants × a few KiB of definitions.
const maxCachedTenants = 10_000

func (c *versionCache) get(tenant string) (cachedTenant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tenants[tenant]
	return t, ok
}

func (c *versionCache) put(tenant string, t cachedTenant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tenants == nil || len(c.tenants) >= maxCachedTenants {
		c.tenants = make(map[string]cachedTenant)
	}
	c.tenants[tenant] = t
}

// servedVersions picks, per feature name, the version reads answer from:
// the active one, else (a new feature being backfilled) the building one.
func servedVersions(all []*version) []*version {
	var out []*version
	for i := 0; i < len(all); {
		j := i
		var pick *version
		for ; j < len(all) && all[j].Tenant == all[i].Tenant && all[j].Name == all[i].Name; j++ {
			v := all[j]
			switch {
			case v.State == StateActive:
				pick = v
			case v.State == StateBuilding && (pick == nil || pick.State != StateActive):
				if pick == nil {
					pick = v
				}
			}
		}
		if pick != nil {
			out = append(out, pick)
		}
		i = j
	}
	return out
}
