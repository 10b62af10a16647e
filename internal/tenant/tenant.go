// Package tenant owns tenants and their API keys, and authenticates HTTP
// requests: a key maps to exactly one tenant, and every domain package scopes
// its queries by the tenant found here, so a tenant never sees another's data.
//
// Keys are random 32-byte secrets shown once at creation; only their SHA-256
// digest is stored. The admin key is not stored at all: it is configuration
// (BULWARK_ADMIN_KEY, or generated into the data directory by `serve`).
package tenant

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Principal is who a request acts for.
type Principal struct {
	TenantID string
	KeyID    string
	Admin    bool
	// Sources and TrafficTypes list what the key may claim at the edge
	// (admission control downgrades anything else). Empty means defaults only.
	Sources      []string
	TrafficTypes []string
}

// Errors callers test with errors.Is.
var (
	ErrUnauthenticated = errors.New("tenant: missing or unknown API key")
	ErrExists          = errors.New("tenant: already exists")
	ErrNotFound        = errors.New("tenant: not found")
	ErrInvalid         = errors.New("tenant: invalid")
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// authCacheMax bounds the authentication cache: 10,000 keys × ~200 B ≈ 2 MB.
const authCacheMax = 10_000

// authCacheTTL is how long a verified key is trusted without asking the
// database again; a revoked key stops working within this time.
const authCacheTTL = 5 * time.Second

// Store reads and writes tenants and keys.
type Store struct {
	pool     *pgxpool.Pool
	adminKey string
	now      func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	p       Principal
	expires time.Time
}

// NewStore returns a store; adminKey empty disables admin access.
func NewStore(pool *pgxpool.Pool, adminKey string) *Store {
	return &Store{pool: pool, adminKey: adminKey, now: time.Now, cache: make(map[[32]byte]cached)}
}

// keyIDPattern matches the ids CreateKey makes.
var keyIDPattern = regexp.MustCompile(`^key_[0-9a-f]{12}$`)

// CreateTenant creates a tenant.
func (s *Store) CreateTenant(ctx context.Context, id, name string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: tenant id %q must match %s", ErrInvalid, id, idPattern)
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO tenants (id, name) VALUES ($1, $2)", id, name)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%w: tenant %q", ErrExists, id)
	}
	return err
}

// List returns up to limit tenant ids in id order (the console's task
// table lists the tenants it shows rates for).
func (s *Store) List(ctx context.Context, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT id FROM tenants ORDER BY id LIMIT $1", limit)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return ids, nil
}

// KeyOptions are what a new key may claim at the edge.
type KeyOptions struct {
	Sources      []string
	TrafficTypes []string
}

// CreateKey creates an API key for tenant and returns its id and secret. The
// secret is returned once and never stored.
func (s *Store) CreateKey(ctx context.Context, tenantID string, opt KeyOptions) (id, secret string, err error) {
	if !idPattern.MatchString(tenantID) {
		// Also keeps bytes PostgreSQL text refuses out of the query.
		return "", "", fmt.Errorf("%w: tenant %q", ErrNotFound, tenantID)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", err
	}
	secret = "bwk_" + hex.EncodeToString(raw[:])
	digest := sha256.Sum256([]byte(secret))
	id = "key_" + hex.EncodeToString(digest[:6])
	if opt.Sources == nil {
		opt.Sources = []string{}
	}
	if opt.TrafficTypes == nil {
		opt.TrafficTypes = []string{}
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO api_keys (id, tenant_id, digest, sources, traffic_types)
		VALUES ($1, $2, $3, $4, $5)`, id, tenantID, digest[:], opt.Sources, opt.TrafficTypes)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return "", "", fmt.Errorf("%w: tenant %q", ErrNotFound, tenantID)
	}
	if err != nil {
		return "", "", fmt.Errorf("create key: %w", err)
	}
	return id, secret, nil
}

// RevokeKey revokes a key; it stops authenticating within authCacheTTL.
func (s *Store) RevokeKey(ctx context.Context, tenantID, keyID string) error {
	if !idPattern.MatchString(tenantID) || !keyIDPattern.MatchString(keyID) {
		return fmt.Errorf("%w: key %q of tenant %q", ErrNotFound, keyID, tenantID)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = now()
		WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL`, tenantID, keyID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: key %q of tenant %q", ErrNotFound, keyID, tenantID)
	}
	return nil
}

// Exists reports whether a tenant exists.
func (s *Store) Exists(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)", id).Scan(&ok)
	return ok, err
}

// Authenticate maps a presented secret to its principal.
func (s *Store) Authenticate(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, ErrUnauthenticated
	}
	if s.adminKey != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(s.adminKey)) == 1 {
		return Principal{Admin: true, KeyID: "admin"}, nil
	}
	if !strings.HasPrefix(secret, "bwk_") {
		return Principal{}, ErrUnauthenticated
	}
	digest := sha256.Sum256([]byte(secret))
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[digest]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.p, nil
	}
	var p Principal
	err := s.pool.QueryRow(ctx, `SELECT id, tenant_id, sources, traffic_types FROM api_keys
		WHERE digest = $1 AND revoked_at IS NULL`, digest[:]).Scan(&p.KeyID, &p.TenantID, &p.Sources, &p.TrafficTypes)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	s.mu.Lock()
	if len(s.cache) >= authCacheMax {
		clear(s.cache) // rare; a full refill costs one query per key
	}
	s.cache[digest] = cached{p: p, expires: now.Add(authCacheTTL)}
	s.mu.Unlock()
	return p, nil
}
