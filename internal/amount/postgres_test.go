package amount_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-ledger/bulwark/internal/amount"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewEmptyDB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

// TestPostgresRoundTrip writes amounts into a numeric(39,0) column through
// CopyFrom and through every pgx query mode, then reads them back.
func TestPostgresRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t)
	if _, err := conn.Exec(ctx, "CREATE TABLE amounts (id int PRIMARY KEY, v numeric(39,0) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	r := newRand(t)
	values := []amount.Uint128{{}, one, amount.FromUint64(1500), maxU64, two64, amount.Max()}
	for range 100 {
		values = append(values, randAmount(r))
	}
	rows := make([][]any, len(values))
	for i, v := range values {
		rows[i] = []any{i, v}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"amounts"}, []string{"id", "v"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatalf("CopyFrom: %v", err)
	}
	modes := []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec,
		pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol,
	}
	for m, mode := range modes {
		for i, v := range values {
			id := (m+1)*len(values) + i
			if _, err := conn.Exec(ctx, "INSERT INTO amounts (id, v) VALUES ($1, $2)", mode, id, v); err != nil {
				t.Fatalf("mode %v: insert %v: %v", mode, v, err)
			}
		}
	}
	got, err := pgx.CollectRows(mustQuery(t, conn, "SELECT id, v, v::text FROM amounts ORDER BY id"), //nolint:rowserrcheck // pgx.CollectRows checks rows.Err
		func(row pgx.CollectableRow) (amount.Uint128, error) {
			var (
				id   int
				v    amount.Uint128
				text string
			)
			if err := row.Scan(&id, &v, &text); err != nil {
				return v, err
			}
			if want := values[id%len(values)]; v != want || text != want.String() {
				t.Errorf("id %d: scanned %v (text %s), want %v", id, v, text, want)
			}
			return v, nil
		})
	if err != nil || len(got) != len(values)*(len(modes)+1) {
		t.Fatalf("read back %d rows, %v", len(got), err)
	}
}

func mustQuery(t *testing.T, conn *pgx.Conn, sql string) pgx.Rows {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql) //nolint:rowserrcheck // returned to pgx.CollectRows, which checks rows.Err
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestPostgresScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t)
	good := []struct {
		expr string
		want string
	}{
		{"1500::numeric", "1500"},
		{"1500.000::numeric", "1500"},
		{"1.5e3::numeric", "1500"},
		{"'" + max128 + "'::numeric", max128},
		{"'" + max128 + ".0000'::numeric", max128},
		{"'1e38'::numeric", pow10_38},
	}
	for _, tt := range good {
		var v amount.Uint128
		if err := conn.QueryRow(ctx, "SELECT "+tt.expr).Scan(&v); err != nil || v.String() != tt.want {
			t.Errorf("SELECT %s = %v, %v; want %s", tt.expr, v, err, tt.want)
		}
	}
	bad := []struct {
		expr string
		want error
	}{
		{"NULL::numeric", amount.ErrNull},
		{"'-1'::numeric", amount.ErrRange},
		{"'1.5'::numeric", amount.ErrRange},
		{"'0.001'::numeric", amount.ErrRange},
		{"'NaN'::numeric", amount.ErrRange},
		{"'Infinity'::numeric", amount.ErrRange},
		{"'-Infinity'::numeric", amount.ErrRange},
		{"'" + pow128 + "'::numeric", amount.ErrRange},
		{"'1e39'::numeric", amount.ErrRange},
	}
	for _, tt := range bad {
		var v amount.Uint128
		if err := conn.QueryRow(ctx, "SELECT "+tt.expr).Scan(&v); !errors.Is(err, tt.want) {
			t.Errorf("SELECT %s: error %v, want %v", tt.expr, err, tt.want)
		}
	}
	p := new(amount.Uint128)
	if err := conn.QueryRow(ctx, "SELECT NULL::numeric").Scan(&p); err != nil || p != nil {
		t.Errorf("SELECT NULL into *Uint128 = %v, %v; want nil", p, err)
	}
}
