package verify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// schemaSQL creates the verifier's tables: an integer key, a composite
// text key, a table without a primary key (REPLICA IDENTITY FULL), and the
// end marker.
var schemaSQL = []string{
	`CREATE TABLE v_acct (id bigint PRIMARY KEY, ver int NOT NULL, payload text)`,
	`CREATE TABLE v_tag (k text, n int, ver int NOT NULL, payload text, PRIMARY KEY (k, n))`,
	`CREATE TABLE v_full (a int NOT NULL, ver int NOT NULL, note text)`,
	`ALTER TABLE v_full REPLICA IDENTITY FULL`,
	`CREATE TABLE v_end (id int PRIMARY KEY)`,
}

// Tables are the verifier's captured tables, in publication order.
var Tables = []string{"v_acct", "v_tag", "v_full", "v_end"}

// step is one committed change of a key: its operation and the version it
// wrote (the version it removed, for a delete).
type step struct {
	op  string
	ver int
}

// model is the committed history, built by the writer from the changes of
// the transactions whose COMMIT succeeded.
type model struct {
	steps map[string][]step // "table/key" -> history
	live  map[string]int    // "table/key" -> current version, for live rows
	keys  map[string][]string
	next  int
	txns  int
}

func newModel() *model {
	return &model{steps: map[string][]step{}, live: map[string]int{}, keys: map[string][]string{}}
}

// op is one statement of a transaction and its effect on the model.
type op struct {
	sql  string
	args []any
	key  string // "table/key"
	step step
}

// txnPlan is a generated transaction: its statements, and for subtransaction
// workloads the statements of a savepoint that is rolled back.
type txnPlan struct {
	ops      []op
	aborted  []op // inside SAVEPOINT ... ROLLBACK TO
	after    []op // after the rollback to savepoint
	rollback bool
}

// gen generates transactions against a working copy of the model.
type gen struct {
	r    *rand.Rand
	m    *model
	live map[string]int // working copy for the transaction being generated
	seq  int
}

func (g *gen) pick(table string) (string, int, bool) {
	ks := g.m.keys[table]
	for range 8 {
		if len(ks) == 0 {
			return "", 0, false
		}
		k := ks[g.r.IntN(len(ks))]
		if v, ok := g.live[k]; ok {
			return k, v, true
		}
	}
	return "", 0, false
}

// change generates one insert, update or delete on a random table.
func (g *gen) change(payload string) op {
	tables := []string{"v_acct", "v_acct", "v_tag", "v_full"}
	table := tables[g.r.IntN(len(tables))]
	k, v, ok := g.pick(table)
	n := g.r.IntN(10)
	if !ok || n < 4 {
		g.m.next++
		id := g.m.next
		var o op
		switch table {
		case "v_acct":
			o = op{sql: `INSERT INTO v_acct VALUES ($1, 1, $2)`, args: []any{id, payload}, key: fmt.Sprintf("v_acct/%d", id)}
		case "v_tag":
			o = op{sql: `INSERT INTO v_tag VALUES ($1, $2, 1, $3)`, args: []any{fmt.Sprintf("k%d", id%97), id, payload}, key: fmt.Sprintf("v_tag/k%d|%d", id%97, id)}
		default:
			o = op{sql: `INSERT INTO v_full VALUES ($1, 1, $2)`, args: []any{id, payload}, key: fmt.Sprintf("v_full/%d", id)}
		}
		o.step = step{"c", 1}
		g.live[o.key] = 1
		return o
	}
	where, args := keyWhere(k)
	if n < 8 {
		o := op{sql: fmt.Sprintf(`UPDATE %s SET ver = ver + 1, payload = $%d WHERE %s`, table, len(args)+1, where), args: append(args, payload), key: k, step: step{"u", v + 1}}
		if table == "v_full" {
			o.sql = strings.Replace(o.sql, "payload", "note", 1)
		}
		g.live[k] = v + 1
		return o
	}
	delete(g.live, k)
	return op{sql: fmt.Sprintf(`DELETE FROM %s WHERE %s`, table, where), args: args, key: k, step: step{"d", v}}
}

// mustAtoi parses a key part the generator wrote itself: anything but a
// number is a programmer error.
func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(fmt.Sprintf("verify: key part %q: %v", s, err))
	}
	return n
}

func keyWhere(key string) (string, []any) {
	table, k, _ := strings.Cut(key, "/")
	switch table {
	case "v_tag":
		kk, n, _ := strings.Cut(k, "|")
		return "k = $1 AND n = $2", []any{kk, mustAtoi(n)}
	case "v_full":
		return "a = $1", []any{mustAtoi(k)}
	}
	return "id = $1", []any{mustAtoi(k)}
}

// plan generates the next transaction: ordinary commits, rollbacks,
// subtransaction aborts, and large transactions over
// logical_decoding_work_mem (which PostgreSQL streams in progress).
func (g *gen) plan() txnPlan {
	g.seq++
	g.live = make(map[string]int, len(g.m.live))
	for k, v := range g.m.live {
		g.live[k] = v
	}
	var p txnPlan
	payload := fmt.Sprintf("t%d", g.seq)
	size := 1 + g.r.IntN(5)
	kind := g.r.IntN(100)
	if kind >= 92 || kind < 3 {
		size = 400 + g.r.IntN(400) // ≈ 400-800 × 200 B ≈ 80-160 kB > 64 kB
		payload += strings.Repeat("x", 150)
	}
	for range size {
		p.ops = append(p.ops, g.change(payload))
	}
	switch {
	case kind < 10:
		p.rollback = true
		for i := range p.ops {
			p.ops[i].args[len(p.ops[i].args)-1] = rollbackMark(p.ops[i].args)
		}
	case kind < 25 || kind >= 96:
		saved := make(map[string]int, len(g.live))
		for k, v := range g.live {
			saved[k] = v
		}
		n := 1 + g.r.IntN(3)
		if kind >= 96 {
			n = 300
		}
		for range n {
			o := g.change("ROLLBACK")
			o.args[len(o.args)-1] = rollbackMark(o.args)
			p.aborted = append(p.aborted, o)
		}
		g.live = saved
		p.after = append(p.after, g.change(payload+"-after"))
	}
	return p
}

// rollbackMark keeps integer arguments (keys) and marks text payloads of
// work that must never appear in the stream.
func rollbackMark(args []any) any {
	if s, ok := args[len(args)-1].(string); ok && !strings.HasPrefix(s, "k") {
		return "ROLLBACK"
	}
	return args[len(args)-1]
}

// apply runs p; on a successful commit its changes enter the model.
func (m *model) apply(ctx context.Context, conn *pgx.Conn, p txnPlan) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	run := func(ops []op) error {
		for _, o := range ops {
			if _, err := tx.Exec(ctx, o.sql, o.args...); err != nil {
				return fmt.Errorf("%s: %w", o.sql, err)
			}
		}
		return nil
	}
	if err := run(p.ops); err != nil {
		return err
	}
	if p.aborted != nil {
		if _, err := tx.Exec(ctx, "SAVEPOINT s"); err != nil {
			return err
		}
		if err := run(p.aborted); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s"); err != nil {
			return err
		}
		if err := run(p.after); err != nil {
			return err
		}
	}
	if p.rollback {
		return tx.Rollback(ctx)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	m.txns++
	for _, o := range append(p.ops, p.after...) {
		m.record(o)
	}
	return nil
}

func (m *model) record(o op) {
	if _, seen := m.steps[o.key]; !seen {
		table, _, _ := strings.Cut(o.key, "/")
		m.keys[table] = append(m.keys[table], o.key)
	}
	m.steps[o.key] = append(m.steps[o.key], o.step)
	if o.step.op == "d" {
		delete(m.live, o.key)
	} else {
		m.live[o.key] = o.step.ver
	}
}
