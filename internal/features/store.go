package features

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

// Errors of the definition store, tested with errors.Is.
var (
	ErrNotFound        = errors.New("features: no such feature")
	ErrTooManyFeatures = errors.New("features: the tenant has features.max_definitions features")
)

// Store manages feature definitions and their versions.
type Store struct {
	pool *pgxpool.Pool
	lim  limits
	now  func() time.Time
}

// NewStore returns the definition store; lim supplies the per-tenant
// limits (a *control.Watcher).
func NewStore(pool *pgxpool.Pool, lim limits) *Store {
	return &Store{pool: pool, lim: lim, now: time.Now}
}

// VersionInfo describes one stored version.
type VersionInfo struct {
	Name       string          `json:"name"`
	Version    int32           `json:"version"`
	State      string          `json:"state"`
	Definition json.RawMessage `json:"definition"`
	CreatedAt  time.Time       `json:"created_at"`
	BuiltAt    *time.Time      `json:"built_at,omitempty"`
	Task       *TaskProgress   `json:"task,omitempty"`
}

// TaskProgress sums a building version's task partitions.
type TaskProgress struct {
	Task          string `json:"task"`
	Partitions    int    `json:"partitions"`
	DonePartition int    `json:"done_partitions"`
	DoneEvents    int64  `json:"done_events"`
	TotalEvents   int64  `json:"total_events"`
}

func info(v *version) VersionInfo {
	return VersionInfo{Name: v.Name, Version: v.Version, State: v.State, Definition: v.Canonical,
		CreatedAt: v.CreatedAt, BuiltAt: v.BuiltAt}
}

// lockTenant creates the tenant's generation row if needed and bumps it.
// The row lock waits for feature batches in flight (they hold it FOR
// SHARE) and holds back new ones until the transaction ends.
func lockTenant(ctx context.Context, tx pgx.Tx, tenant string) error {
	_, err := tx.Exec(ctx, `INSERT INTO feature_tenants (tenant_id, generation) VALUES ($1, 1)
		ON CONFLICT (tenant_id) DO UPDATE SET generation = feature_tenants.generation + 1`, tenant)
	if err != nil {
		return fmt.Errorf("lock feature tenant: %w", err)
	}
	return nil
}

// Define stores def for tenant: a new feature (version 1, building, its
// backfill queued), a change (version n+1, building, its recompute
// queued; reads keep answering version n until it is built), or nothing
// when def equals the newest live version (created false).
func (s *Store) Define(ctx context.Context, tenant string, def spec.Definition) (VersionInfo, bool, error) {
	canon := def.Canonical()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return VersionInfo{}, false, err
	}
	defer tx.Rollback(ctx)
	if err := lockTenant(ctx, tx, tenant); err != nil {
		return VersionInfo{}, false, err
	}
	rows, err := tx.Query(ctx, `SELECT `+versionCols+` FROM feature_versions
		WHERE tenant_id = $1 AND name = $2 ORDER BY version`, tenant, def.Name)
	if err != nil {
		return VersionInfo{}, false, err
	}
	all, err := scanVersions(rows)
	if err != nil {
		return VersionInfo{}, false, err
	}
	live := false
	for _, v := range all {
		if v.State != StateRetired {
			live = true
		}
	}
	if n := len(all); n > 0 && all[n-1].State != StateRetired && bytes.Equal(all[n-1].Canonical, canon) {
		return info(all[n-1]), false, nil
	}
	if !live {
		var count int64
		if err := tx.QueryRow(ctx, `SELECT count(DISTINCT name) FROM feature_versions
			WHERE tenant_id = $1 AND state <> 'retired'`, tenant).Scan(&count); err != nil {
			return VersionInfo{}, false, err
		}
		if count >= s.lim.Int(tenant, control.KeyFeaturesMaxDefinitions) {
			return VersionInfo{}, false, ErrTooManyFeatures
		}
	}
	next := int32(1)
	if n := len(all); n > 0 {
		next = all[n-1].Version + 1
	}
	task := control.TaskAggBackfill
	for _, v := range all {
		if v.State == StateActive {
			task = control.TaskRecompute
		}
	}
	v, err := insertVersion(ctx, tx, tenant, def, canon, next, task)
	if err != nil {
		return VersionInfo{}, false, err
	}
	// A version still building for an older change is superseded.
	if _, err := tx.Exec(ctx, `UPDATE feature_versions SET state = 'retired', retired_at = now()
		WHERE tenant_id = $1 AND name = $2 AND version < $3 AND state = 'building'`, tenant, def.Name, next); err != nil {
		return VersionInfo{}, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return VersionInfo{}, false, err
	}
	return v, true, nil
}

func insertVersion(ctx context.Context, tx pgx.Tx, tenant string, def spec.Definition, canon []byte, next int32, task string) (VersionInfo, error) {
	// Every event of this tenant committed so far has a sequence number at
	// most cutoff (worker batches of this tenant wait on the row lock), and
	// every later one a greater number: backfill covers seq <= cutoff, the
	// live path the rest. Ledger entries: created_at (the database clock)
	// before cutoff_at for backfill, the rest live.
	var v VersionInfo
	err := tx.QueryRow(ctx, `INSERT INTO feature_versions (tenant_id, name, version, source, entity, definition, state, cutoff_seq, cutoff_at)
		SELECT $1, $2, $3, $4, $5, $6, 'building',
			(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM feature_events_seq), clock_timestamp()
		RETURNING name, version, state, definition, created_at`,
		tenant, def.Name, next, def.Source, def.Entity, canon).Scan(&v.Name, &v.Version, &v.State, &v.Definition, &v.CreatedAt)
	if err != nil {
		return v, fmt.Errorf("insert feature version: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO feature_task_parts (tenant_id, name, version, partition, task)
		SELECT $1, $2, $3, p, $4 FROM generate_series(0, $5 - 1) AS p`, tenant, def.Name, next, task, TaskPartitions); err != nil {
		return v, fmt.Errorf("queue %s: %w", task, err)
	}
	return v, nil
}

// Delete retires every version of the feature; its tiles are dropped by
// the janitor.
func (s *Store) Delete(ctx context.Context, tenant, name string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := lockTenant(ctx, tx, tenant); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `UPDATE feature_versions SET state = 'retired', retired_at = now()
		WHERE tenant_id = $1 AND name = $2 AND state <> 'retired'`, tenant, name)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	if _, err := tx.Exec(ctx, `UPDATE feature_task_parts SET done = true, updated_at = now()
		WHERE tenant_id = $1 AND name = $2 AND NOT done`, tenant, name); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// List returns the live versions of every feature of tenant.
func (s *Store) List(ctx context.Context, tenant string) ([]VersionInfo, error) {
	vs, err := liveVersions(ctx, s.pool, []string{tenant})
	if err != nil {
		return nil, err
	}
	out := make([]VersionInfo, 0, len(vs))
	for _, v := range vs {
		out = append(out, info(v))
	}
	return out, s.addProgress(ctx, tenant, out)
}

// Show returns every version of one feature, retired ones included.
func (s *Store) Show(ctx context.Context, tenant, name string) ([]VersionInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+versionCols+` FROM feature_versions
		WHERE tenant_id = $1 AND name = $2 ORDER BY version`, tenant, name)
	if err != nil {
		return nil, err
	}
	vs, err := scanVersions(rows)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, ErrNotFound
	}
	out := make([]VersionInfo, 0, len(vs))
	for _, v := range vs {
		out = append(out, info(v))
	}
	return out, s.addProgress(ctx, tenant, out)
}

// addProgress attaches task progress to building versions.
func (s *Store) addProgress(ctx context.Context, tenant string, vs []VersionInfo) error {
	for i := range vs {
		if vs[i].State != StateBuilding {
			continue
		}
		p := &TaskProgress{}
		err := s.pool.QueryRow(ctx, `SELECT coalesce(min(task), ''), count(*), count(*) FILTER (WHERE done),
				coalesce(sum(done_events), 0), coalesce(sum(total_events), 0)
			FROM feature_task_parts WHERE tenant_id = $1 AND name = $2 AND version = $3`,
			tenant, vs[i].Name, vs[i].Version).Scan(&p.Task, &p.Partitions, &p.DonePartition, &p.DoneEvents, &p.TotalEvents)
		if err != nil {
			return err
		}
		vs[i].Task = p
	}
	return nil
}
