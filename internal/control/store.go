package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// NotifyChannel is the PostgreSQL NOTIFY channel of setting changes; the
// payload is the new version in decimal.
const NotifyChannel = "bulwark_control"

// MaxOverrides bounds the stored overrides (tenant × key rows): 100,000 rows
// × ~60 B ≈ 6 MB per full reload, which a watcher reads in well under a
// second. A change that would add a row beyond it fails with ErrTooManyOverrides.
const MaxOverrides = 100_000

// MaxChanges bounds the keys of one change (a preset or a set/unset call).
const MaxChanges = 256

// MaxHistory bounds the audit entries of one History call.
const MaxHistory = 1000

// MaxReasonBytes bounds an audit reason or operator name.
const MaxReasonBytes = 1024

var tenantPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Store reads and changes overrides in PostgreSQL. Every change is one
// transaction that bumps the global version, writes the overrides and their
// audit rows, and notifies NotifyChannel at commit.
type Store struct {
	pool *pgxpool.Pool
	reg  *Registry
}

// NewStore returns a store of the settings of reg.
func NewStore(pool *pgxpool.Pool, reg *Registry) *Store {
	return &Store{pool: pool, reg: reg}
}

// Change sets Key to Value, or removes the override when Unset.
type Change struct {
	Key   string
	Value string
	Unset bool
}

// Actor is who makes a change and why, as recorded in the audit trail.
type Actor struct {
	KeyID    string // authenticated API key id ("admin" for the admin key)
	Operator string // name the client claimed; informative, not verified
	Reason   string
}

// AuditEntry is one changed key. OldValue or NewValue nil means "unset".
type AuditEntry struct {
	ID       int64     `json:"id"`
	Version  int64     `json:"version"`
	Tenant   string    `json:"tenant"`
	Key      string    `json:"key"`
	OldValue *string   `json:"old_value"`
	NewValue *string   `json:"new_value"`
	Actor    string    `json:"actor"`
	Operator string    `json:"operator,omitempty"`
	Reason   string    `json:"reason"`
	Preset   *string   `json:"preset,omitempty"`
	At       time.Time `json:"at"`
}

// Result is the outcome of a change: the version it produced (or the
// current one when nothing changed) and the keys it changed.
type Result struct {
	Version int64        `json:"version"`
	Changes []AuditEntry `json:"changes"`
}

// Apply makes changes to tenant's overrides (GlobalTenant for the global
// scope) atomically: either every change is valid and applied, or none is.
// Changes that set a key to its current override are skipped; if nothing
// changes, the version does not move.
func (s *Store) Apply(ctx context.Context, tenant string, changes []Change, who Actor) (Result, error) {
	canon, err := s.check(tenant, changes, who)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = s.inTx(ctx, tenant, func(tx pgx.Tx, version int64) (bool, error) {
		entries, err := applyTx(ctx, tx, tenant, version, canon, who, nil)
		res = Result{Version: version, Changes: entries}
		if len(entries) == 0 {
			res.Version = version - 1 // rolled back below: the version did not move
		}
		return len(entries) > 0, err
	})
	return res, err
}

// check validates a change without touching the database and returns it
// with values in canonical form.
func (s *Store) check(tenant string, changes []Change, who Actor) ([]Change, error) {
	if err := checkScope(tenant, who); err != nil {
		return nil, err
	}
	if len(changes) == 0 || len(changes) > MaxChanges {
		return nil, fmt.Errorf("%w: a change holds 1 to %d keys, not %d", ErrBadRequest, MaxChanges, len(changes))
	}
	out := make([]Change, len(changes))
	seen := make(map[string]bool, len(changes))
	for i, c := range changes {
		if seen[c.Key] {
			return nil, fmt.Errorf("%w: key %q given twice", ErrBadRequest, c.Key)
		}
		seen[c.Key] = true
		if c.Unset {
			if _, err := s.reg.lookup(c.Key); err != nil {
				return nil, err
			}
			out[i] = c
			continue
		}
		v, err := s.reg.Parse(c.Key, c.Value)
		if err != nil {
			return nil, err
		}
		out[i] = Change{Key: c.Key, Value: v.String()}
	}
	return out, nil
}

func checkScope(tenant string, who Actor) error {
	if tenant != GlobalTenant && !tenantPattern.MatchString(tenant) {
		return fmt.Errorf("%w: %q", ErrUnknownTenant, tenant)
	}
	if len(who.Reason) > MaxReasonBytes || len(who.Operator) > MaxReasonBytes {
		return fmt.Errorf("%w: reason and operator are limited to %d bytes", ErrBadRequest, MaxReasonBytes)
	}
	return nil
}

// inTx runs fn in a transaction that has checked tenant and taken the next
// version (holding the version row's lock, which serialises all changes).
// fn returns whether to commit; on commit the change is notified.
func (s *Store) inTx(ctx context.Context, tenant string, fn func(tx pgx.Tx, version int64) (bool, error)) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("control: begin: %w", err)
	}
	defer tx.Rollback(ctx) // a no-op after commit
	if tenant != GlobalTenant {
		var ok bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)", tenant).Scan(&ok); err != nil {
			return fmt.Errorf("control: check tenant: %w", err)
		}
		if !ok {
			return fmt.Errorf("%w: %q", ErrUnknownTenant, tenant)
		}
	}
	var version int64
	if err := tx.QueryRow(ctx, `UPDATE control_version SET version = version + 1, changed_at = clock_timestamp()
		RETURNING version`).Scan(&version); err != nil {
		return fmt.Errorf("control: next version: %w", err)
	}
	commit, err := fn(tx, version)
	if err != nil || !commit {
		return err
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", NotifyChannel, fmt.Sprint(version)); err != nil {
		return fmt.Errorf("control: notify: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("control: commit version %d: %w", version, err)
	}
	return nil
}

// currentTx returns tenant's overrides of keys inside tx.
func currentTx(ctx context.Context, tx pgx.Tx, tenant string, keys []string) (map[string]string, error) {
	rows, err := tx.Query(ctx, `SELECT key, value FROM control_settings WHERE tenant_id = $1 AND key = ANY($2)`, tenant, keys) //nolint:rowserrcheck // pgx.ForEachRow checks rows.Err
	if err != nil {
		return nil, fmt.Errorf("control: read overrides: %w", err)
	}
	cur := make(map[string]string, len(keys))
	var k, v string
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error { cur[k] = v; return nil })
	if err != nil {
		return nil, fmt.Errorf("control: read overrides: %w", err)
	}
	return cur, nil
}

// applyTx writes changes and their audit rows at version and returns the
// entries of the keys that actually changed.
func applyTx(ctx context.Context, tx pgx.Tx, tenant string, version int64, changes []Change, who Actor, preset *string) ([]AuditEntry, error) {
	keys := make([]string, len(changes))
	for i, c := range changes {
		keys[i] = c.Key
	}
	cur, err := currentTx(ctx, tx, tenant, keys)
	if err != nil {
		return nil, err
	}
	var entries []AuditEntry
	added := false
	b := &pgx.Batch{}
	for _, c := range changes {
		old, had := cur[c.Key]
		e := AuditEntry{Version: version, Tenant: tenant, Key: c.Key, Actor: who.KeyID,
			Operator: who.Operator, Reason: who.Reason, Preset: preset}
		if had {
			e.OldValue = &old
		}
		switch {
		case c.Unset && !had, !c.Unset && had && old == c.Value:
			continue // no change
		case c.Unset:
			b.Queue("DELETE FROM control_settings WHERE tenant_id = $1 AND key = $2", tenant, c.Key)
		default:
			v := c.Value
			e.NewValue = &v
			added = added || !had
			b.Queue(`INSERT INTO control_settings (tenant_id, key, value, version) VALUES ($1, $2, $3, $4)
				ON CONFLICT (tenant_id, key) DO UPDATE SET value = $3, version = $4, updated_at = now()`,
				tenant, c.Key, c.Value, version)
		}
		idx := len(entries)
		entries = append(entries, e)
		b.Queue(`INSERT INTO control_audit (version, tenant_id, key, old_value, new_value, actor, operator, reason, preset)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, at`,
			version, tenant, c.Key, e.OldValue, e.NewValue, e.Actor, e.Operator, e.Reason, preset).
			QueryRow(func(row pgx.Row) error { return row.Scan(&entries[idx].ID, &entries[idx].At) })
	}
	if len(entries) == 0 {
		return nil, nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("control: write version %d: %w", version, err)
	}
	if added {
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM control_settings").Scan(&n); err != nil {
			return nil, fmt.Errorf("control: count overrides: %w", err)
		}
		if n > MaxOverrides {
			return nil, fmt.Errorf("%w: %d stored, limit %d", ErrTooManyOverrides, n, MaxOverrides)
		}
	}
	return entries, nil
}

// ApplyPreset applies preset name to tenant, recording the values it
// replaces. The version moves even when every value was already in place,
// so that the application itself is recorded and can be reverted.
func (s *Store) ApplyPreset(ctx context.Context, tenant, name string, who Actor) (Result, error) {
	p, err := s.reg.Preset(name)
	if err != nil {
		return Result{}, err
	}
	changes := make([]Change, len(p.Values))
	for i, a := range p.Values {
		changes[i] = Change{Key: a.Key, Value: a.Value}
	}
	canon, err := s.check(tenant, changes, who)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = s.inTx(ctx, tenant, func(tx pgx.Tx, version int64) (bool, error) {
		keys := make([]string, len(canon))
		for i, c := range canon {
			keys[i] = c.Key
		}
		cur, err := currentTx(ctx, tx, tenant, keys)
		if err != nil {
			return false, err
		}
		prev := make(map[string]*string, len(keys))
		for _, k := range keys {
			if v, ok := cur[k]; ok {
				prev[k] = &v
			} else {
				prev[k] = nil
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO control_presets_applied (tenant_id, preset, previous, version)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, tenant, name, prev, version)
		if err != nil {
			return false, fmt.Errorf("control: record preset: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return false, fmt.Errorf("%w: %q on tenant %q (revert it first)", ErrPresetApplied, name, tenant)
		}
		entries, err := applyTx(ctx, tx, tenant, version, canon, who, &name)
		res = Result{Version: version, Changes: entries}
		return err == nil, err
	})
	return res, err
}

// RevertPreset restores the values preset name replaced on tenant, exactly:
// keys that were unset are unset again, whatever was set meanwhile.
func (s *Store) RevertPreset(ctx context.Context, tenant, name string, who Actor) (Result, error) {
	if _, err := s.reg.Preset(name); err != nil {
		return Result{}, err
	}
	if err := checkScope(tenant, who); err != nil {
		return Result{}, err
	}
	var res Result
	err := s.inTx(ctx, tenant, func(tx pgx.Tx, version int64) (bool, error) {
		var prev map[string]*string
		err := tx.QueryRow(ctx, `DELETE FROM control_presets_applied WHERE tenant_id = $1 AND preset = $2
			RETURNING previous`, tenant, name).Scan(&prev)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, fmt.Errorf("%w: %q on tenant %q", ErrPresetNotApplied, name, tenant)
		}
		if err != nil {
			return false, fmt.Errorf("control: read preset: %w", err)
		}
		changes := make([]Change, 0, len(prev))
		for _, k := range slices.Sorted(maps.Keys(prev)) {
			v := prev[k]
			if v == nil {
				changes = append(changes, Change{Key: k, Unset: true})
			} else {
				changes = append(changes, Change{Key: k, Value: *v})
			}
		}
		tag := name + " (revert)"
		entries, err := applyTx(ctx, tx, tenant, version, changes, who, &tag)
		res = Result{Version: version, Changes: entries}
		return err == nil, err
	})
	return res, err
}

// Setting is one key's effective value for a tenant and where it comes from.
type Setting struct {
	Key     string `json:"key"`
	Type    string `json:"type"`
	Value   string `json:"value"`
	Source  string `json:"source"` // "tenant", "global" or "default"
	Default string `json:"default"`
}

// TenantSettings is every key's effective value for one tenant.
type TenantSettings struct {
	Tenant         string    `json:"tenant"`
	Version        int64     `json:"version"`
	Settings       []Setting `json:"settings"`
	PresetsApplied []string  `json:"presets_applied"`
}

// Settings reads tenant's effective settings from the store (not from a
// watcher, so it reflects a change just made).
func (s *Store) Settings(ctx context.Context, tenant string) (TenantSettings, error) {
	if tenant != GlobalTenant && !tenantPattern.MatchString(tenant) {
		return TenantSettings{}, fmt.Errorf("%w: %q", ErrUnknownTenant, tenant)
	}
	out := TenantSettings{Tenant: tenant, PresetsApplied: []string{}}
	own := map[string]string{}
	global := map[string]string{}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if tenant != GlobalTenant {
			var ok bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)", tenant).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: %q", ErrUnknownTenant, tenant)
			}
		}
		if err := tx.QueryRow(ctx, "SELECT version FROM control_version").Scan(&out.Version); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `SELECT tenant_id, key, value FROM control_settings WHERE tenant_id IN ($1, '*')`, tenant) //nolint:rowserrcheck // pgx.ForEachRow returns the query's error and checks rows.Err
		var t, k, v string
		if _, err := pgx.ForEachRow(rows, []any{&t, &k, &v}, func() error {
			if t == tenant {
				own[k] = v
			} else {
				global[k] = v
			}
			return nil
		}); err != nil {
			return err
		}
		rows, _ = tx.Query(ctx, `SELECT preset FROM control_presets_applied WHERE tenant_id = $1 ORDER BY preset`, tenant)
		applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
		out.PresetsApplied = append(out.PresetsApplied, applied...)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrUnknownTenant) {
			return TenantSettings{}, err
		}
		return TenantSettings{}, fmt.Errorf("control: read settings: %w", err)
	}
	for _, k := range s.reg.Keys() {
		st := Setting{Key: k.Name, Type: k.Type.String(), Value: k.Default, Source: "default", Default: k.Default}
		if v, ok := global[k.Name]; ok {
			st.Value, st.Source = v, "global"
		}
		if v, ok := own[k.Name]; ok {
			st.Value, st.Source = v, "tenant"
		}
		out.Settings = append(out.Settings, st)
	}
	return out, nil
}

// HistoryFilter selects audit entries, newest first.
type HistoryFilter struct {
	Tenant   string // "" for every tenant
	Key      string // "" for every key
	Limit    int    // 1..MaxHistory; 0 means 100
	BeforeID int64  // page: entries with id < BeforeID; 0 for the newest
}

// History returns audit entries matching f, newest first.
func (s *Store) History(ctx context.Context, f HistoryFilter) ([]AuditEntry, error) {
	if f.Limit == 0 {
		f.Limit = 100
	}
	if f.Limit < 0 || f.Limit > MaxHistory {
		return nil, fmt.Errorf("%w: limit must be 1 to %d", ErrBadRequest, MaxHistory)
	}
	if f.BeforeID <= 0 {
		f.BeforeID = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, `SELECT id, version, tenant_id, key, old_value, new_value, actor, operator, reason, preset, at
		FROM control_audit WHERE ($1 = '' OR tenant_id = $1) AND ($2 = '' OR key = $2) AND id < $3
		ORDER BY id DESC LIMIT $4`, f.Tenant, f.Key, f.BeforeID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("control: history: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := row.Scan(&e.ID, &e.Version, &e.Tenant, &e.Key, &e.OldValue, &e.NewValue, &e.Actor, &e.Operator, &e.Reason, &e.Preset, &e.At)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("control: history: %w", err)
	}
	return out, nil
}
