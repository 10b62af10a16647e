// Package schema owns Bulwark's PostgreSQL schema: versioned SQL migrations
// embedded in the binary and applied with goose at start-up.
//
// Version ranges keep concurrent work from colliding: 1-99 core and ledger,
// 100-199 control plane, 200-299 change stream, 300-399 features,
// 400-499 exports. Migrations are append-only: a published file never changes.
package schema

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// versionTable is goose's bookkeeping table (its default name, which
// migrate keeps).
const versionTable = "goose_db_version"

// Installed reports whether the database holds Bulwark's schema, that is
// whether migrations were ever applied to it. Maintenance commands use it
// to refuse an empty database instead of creating the schema in it.
func Installed(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var ok bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable).Scan(&ok); err != nil {
		return false, fmt.Errorf("schema: look for %s: %w", versionTable, err)
	}
	return ok, nil
}

// Migrate applies every pending migration. It is safe to call from several
// processes at once: goose serialises them with a session advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return migrate(ctx, db)
}

func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := newLocker()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithSessionLocker(locker), goose.WithAllowOutofOrder(true))
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("schema: migrate: %w", err)
	}
	return nil
}
