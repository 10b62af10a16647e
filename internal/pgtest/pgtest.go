// Package pgtest gives tests a real PostgreSQL: one private cluster per test
// binary (started in TestMain through Main) and one fresh database per test,
// cloned from a migrated template so that tests run in parallel in
// milliseconds each.
//
// Set BULWARK_TEST_POSTGRES to a superuser URL of an existing server to use
// that server instead of starting a cluster (databases are still created per
// test and dropped after).
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/pgserver"
	"github.com/bulwark-ledger/bulwark/internal/schema"
)

var (
	mu       sync.Mutex
	cluster  *pgserver.Cluster
	baseURL  string // superuser URL of the maintenance database
	template string // migrated template database, created once per binary
	tmpDir   string
	counter  atomic.Int64
)

// Main runs m with a private cluster and stops it afterwards. Call it from
// TestMain: func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop cluster:", err)
		}
	}
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	return code
}

// ServerURL returns the superuser URL of the test server for database db,
// starting the cluster on first use.
func ServerURL(t testing.TB, db string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if err := ensureServerLocked(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return withDB(baseURL, db)
}

// Cluster returns the private cluster (nil when BULWARK_TEST_POSTGRES is used).
func Cluster(t testing.TB) *pgserver.Cluster {
	ServerURL(t, "postgres")
	return cluster
}

func ensureServerLocked() error {
	if baseURL != "" {
		return nil
	}
	if u := os.Getenv("BULWARK_TEST_POSTGRES"); u != "" {
		baseURL = u
		return nil
	}
	dir, err := pgserver.TempDir("bulwark-pgtest-")
	if err != nil {
		return err
	}
	tmpDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgserver.Start(ctx, pgserver.Config{Dir: filepath.Join(dir, "data"), Fast: true})
	if err != nil {
		return err
	}
	cluster = c
	baseURL = c.URL("postgres")
	return nil
}

// NewDB creates a fresh database with every Bulwark migration applied and
// returns its URL. The database is dropped when the test ends.
func NewDB(t testing.TB) string {
	t.Helper()
	return newDB(t, true)
}

// NewEmptyDB is NewDB without migrations.
func NewEmptyDB(t testing.TB) string {
	t.Helper()
	return newDB(t, false)
}

// Pool returns a pool on a new migrated database, closed at test end.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), NewDB(t))
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newDB(t testing.TB, migrated bool) string {
	t.Helper()
	ctx := context.Background()
	admin := ServerURL(t, "postgres")
	tmpl := "template0"
	if migrated {
		var err error
		if tmpl, err = ensureTemplate(ctx); err != nil {
			t.Fatalf("pgtest: template: %v", err)
		}
	}
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), counter.Add(1))
	if err := exec(ctx, admin, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tmpl)); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		_ = exec(context.Background(), admin, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
	})
	return withDB(admin, name)
}

func ensureTemplate(ctx context.Context) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if template != "" {
		return template, nil
	}
	name := fmt.Sprintf("tmpl_%d", os.Getpid())
	if err := exec(ctx, withDB(baseURL, "postgres"), "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, withDB(baseURL, name))
	if err != nil {
		return "", err
	}
	err = schema.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return "", err
	}
	template = name
	return name, nil
}

func exec(ctx context.Context, connURL, sql string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func withDB(base, db string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(fmt.Sprintf("pgtest: bad server URL %q: %v", base, err))
	}
	u.Path = "/" + db
	return u.String()
}
