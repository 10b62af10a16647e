package export

import (
	"fmt"
	"strings"
	"time"
)

// Column is one column of an export: its name, its type as the manifest
// states it, and the SQL expression that renders it as text.
type Column struct {
	Name string `json:"name"`
	// Type is one of string, integer, decimal (an unsigned integer in minor
	// units, written as a string in JSONL since it may exceed 2^53),
	// timestamp (RFC 3339, UTC, microseconds), uuid and json.
	Type string `json:"type"`
	expr string
}

// ts renders a timestamptz the same way whatever the session's time zone
// or DateStyle: output must be byte-identical across workers.
func ts(col string) string {
	return `to_char(` + col + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
}

// kind describes how one kind of export reads its rows: chunk by chunk in
// key order, each chunk starting after the last key of the one before.
type kind struct {
	columns []Column
	// keyCols are the indexes of the key columns in columns.
	keyCols []int
	// from and where and order make the chunk query; see chunkSQL.
	from, where, order string
	// keyPred compares the row's key with the checkpoint's ($6, $7...).
	keyPred string
	// firstKey is a key before every row.
	firstKey []string
	// args returns the query's arguments after $1 tenant and $2 cut-off.
	args func(j *Job, key []string) []any
}

var kinds = map[string]*kind{
	KindEntries: {
		columns: []Column{
			{"account_id", "string", "e.account_id"},
			{"seq", "integer", "e.seq::text"},
			{"transaction_id", "uuid", "e.transaction_id::text"},
			{"posting", "integer", "e.posting::text"},
			{"side", "string", "e.side::text"},
			{"effect", "string", "e.effect"},
			{"amount", "decimal", "e.amount::text"},
			{"asset", "string", "e.asset"},
			{"debits_posted", "decimal", "e.debits_posted::text"},
			{"credits_posted", "decimal", "e.credits_posted::text"},
			{"debits_pending", "decimal", "e.debits_pending::text"},
			{"credits_pending", "decimal", "e.credits_pending::text"},
			{"created_at", "timestamp", ts("e.created_at")},
		},
		keyCols: []int{0, 1},
		from:    "entries e",
		where: "e.tenant_id = $1 AND e.created_at <= $2 AND e.created_at >= $3 AND e.created_at < $4" +
			" AND ($5::text IS NULL OR e.account_id = $5)",
		keyPred:  "(e.account_id, e.seq) > ($6::text, $7::bigint)",
		order:    "e.account_id, e.seq",
		firstKey: []string{"", "0"},
		args: func(j *Job, key []string) []any {
			var acct *string
			if j.Request.AccountID != "" {
				acct = &j.Request.AccountID
			}
			return []any{*j.Request.From, *j.Request.To, acct, key[0], key[1]}
		},
	},
	KindTransactions: {
		columns: []Column{
			{"id", "uuid", "t.id::text"},
			{"idempotency_key", "string", "t.idempotency_key"},
			{"kind", "string", "t.kind"},
			{"state", "string", "t.state"},
			{"pending_id", "uuid", "t.pending_id::text"},
			{"expires_at", "timestamp", ts("t.expires_at")},
			{"postings", "json", "t.postings::text"},
			{"metadata", "json", "t.metadata::text"},
			{"created_at", "timestamp", ts("t.created_at")},
		},
		keyCols:  []int{0},
		from:     "transactions t",
		where:    "t.tenant_id = $1 AND t.created_at <= $2 AND t.created_at >= $3 AND t.created_at < $4",
		keyPred:  "t.id > $5::uuid",
		order:    "t.id",
		firstKey: []string{"00000000-0000-0000-0000-000000000000"},
		args: func(j *Job, key []string) []any {
			return []any{*j.Request.From, *j.Request.To, key[0]}
		},
	},
	KindAccounts: {
		columns: []Column{
			{"id", "string", "a.id"},
			{"asset", "string", "a.asset"},
			{"scale", "integer", "a.scale::text"},
			{"rule", "string", "a.rule"},
			{"metadata", "json", "a.metadata::text"},
			{"created_at", "timestamp", ts("a.created_at")},
			{"seq", "integer", "coalesce(b.seq, ar.seq, 0)::text"},
			{"debits_posted", "decimal", "coalesce(b.debits_posted, ar.debits_posted, 0)::text"},
			{"credits_posted", "decimal", "coalesce(b.credits_posted, ar.credits_posted, 0)::text"},
			{"debits_pending", "decimal", "coalesce(b.debits_pending, ar.debits_pending, 0)::text"},
			{"credits_pending", "decimal", "coalesce(b.credits_pending, ar.credits_pending, 0)::text"},
		},
		keyCols: []int{0},
		// Balances as of the cut-off: those after the account's last entry
		// at or before it (entries carry balances after), else the archive
		// checkpoint, else zero.
		from: `accounts a
			LEFT JOIN LATERAL (SELECT x.seq, x.debits_posted, x.credits_posted, x.debits_pending, x.credits_pending
				FROM entries x WHERE x.tenant_id = a.tenant_id AND x.account_id = a.id AND x.created_at <= $2
				ORDER BY x.seq DESC LIMIT 1) b ON true
			LEFT JOIN entry_archives ar ON b.seq IS NULL AND ar.tenant_id = a.tenant_id AND ar.account_id = a.id
				AND ar.last_entry_at <= $2`,
		where:    "a.tenant_id = $1 AND a.created_at <= $2",
		keyPred:  "a.id > $3::text",
		order:    "a.id",
		firstKey: []string{""},
		args: func(j *Job, key []string) []any {
			return []any{key[0]}
		},
	},
}

// selectList is the kind's columns as SQL.
func (k *kind) selectList() string {
	var b strings.Builder
	for i, c := range k.columns {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s AS %s", c.expr, c.Name)
	}
	return b.String()
}

// chunkSQL reads the chunk after a key: at most $N rows in key order.
func (k *kind) chunkSQL(nargs int) string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s AND %s ORDER BY %s LIMIT $%d",
		k.selectList(), k.from, k.where, k.keyPred, k.order, nargs+1)
}

// chunkArgs returns the arguments of chunkSQL after key, limit rows.
func (k *kind) chunkArgs(j *Job, key []string, limit int) []any {
	a := append([]any{j.Tenant, j.Cutoff}, k.args(j, key)...)
	return append(a, limit)
}

// CopySQL returns the query that selects every row of job j, in order, with
// the same text as the export: what `COPY (…) TO STDOUT (FORMAT csv,
// HEADER)` writes is the uncompressed CSV export, byte for byte. Tests
// compare against it and the benchmark times it. Its arguments are
// CopyArgs(j).
func CopySQL(j *Job) string {
	k := kinds[j.Request.Kind]
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s", k.selectList(), k.from, k.where, k.order)
}

// CopyStatement is `COPY (CopySQL(j)) TO STDOUT (FORMAT csv, HEADER)` with
// its arguments as literals (COPY takes no parameters): what it writes is
// the job's uncompressed CSV file, byte for byte.
func CopyStatement(j *Job) string {
	q := CopySQL(j)
	args := CopyArgs(j)
	for i := len(args); i >= 1; i-- { // $10 before $1
		q = strings.ReplaceAll(q, fmt.Sprintf("$%d", i), literal(args[i-1]))
	}
	return "COPY (" + q + ") TO STDOUT (FORMAT csv, HEADER)"
}

func literal(a any) string {
	switch v := a.(type) {
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case *string:
		if v == nil {
			return "NULL::text"
		}
		return literal(*v)
	case time.Time:
		return "'" + v.UTC().Format(time.RFC3339Nano) + "'::timestamptz"
	}
	panic(fmt.Sprintf("export: no literal for %T", a))
}

// CopyArgs are the arguments of CopySQL(j).
func CopyArgs(j *Job) []any {
	k := kinds[j.Request.Kind]
	a := append([]any{j.Tenant, j.Cutoff}, k.args(j, k.firstKey)...)
	return a[:len(a)-len(k.firstKey)]
}

// Columns returns the columns of a kind (nil for an unknown kind).
func Columns(kindName string) []Column {
	if k, ok := kinds[kindName]; ok {
		return append([]Column(nil), k.columns...)
	}
	return nil
}

// estimateSQL asks the planner how many rows a job will write (EXPLAIN,
// not count(*): an estimate must not cost a scan of millions of rows).
func estimateSQL(j *Job) (string, []any) {
	k := kinds[j.Request.Kind]
	a := append([]any{j.Tenant, j.Cutoff}, k.args(j, k.firstKey)...)
	a = a[:len(a)-len(k.firstKey)]
	from := k.from
	if j.Request.Kind == KindAccounts {
		from = "accounts a" // the balance join does not change the count
	}
	return "EXPLAIN (FORMAT JSON) SELECT 1 FROM " + from + " WHERE " + k.where, a
}
