package repl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Conn is a replication connection (replication=database).
type Conn struct {
	pg *pgconn.PgConn
}

// Connect opens a logical replication connection to the database of
// connURL (a postgres:// URL or key=value string).
func Connect(ctx context.Context, connURL string) (*Conn, error) {
	cfg, err := pgconn.ParseConfig(connURL)
	if err != nil {
		return nil, fmt.Errorf("repl: parse connection string: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	// Values are sent as text; these keep the text forms the decoder parses.
	cfg.RuntimeParams["bytea_output"] = "hex"
	cfg.RuntimeParams["DateStyle"] = "ISO"
	cfg.RuntimeParams["IntervalStyle"] = "postgres"
	pg, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("repl: connect: %w", err)
	}
	return &Conn{pg: pg}, nil
}

// WithReplication returns connURL with replication=database, for callers
// that log or display it.
func WithReplication(connURL string) string {
	u, err := url.Parse(connURL)
	if err != nil || u.Scheme == "" {
		return connURL + " replication=database"
	}
	q := u.Query()
	q.Set("replication", "database")
	u.RawQuery = q.Encode()
	return u.String()
}

// Close closes the connection; a temporary slot it created is dropped by
// the server.
func (c *Conn) Close(ctx context.Context) error { return c.pg.Close(ctx) }

func (c *Conn) exec(ctx context.Context, sql string) ([]*pgconn.Result, error) {
	res, err := c.pg.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	for _, r := range res {
		if r.Err != nil {
			return nil, r.Err
		}
	}
	return res, nil
}

// System is the answer to IDENTIFY_SYSTEM.
type System struct {
	SystemID string
	Timeline int
	XLogPos  LSN
	DBName   string
}

// IdentifySystem runs IDENTIFY_SYSTEM.
func (c *Conn) IdentifySystem(ctx context.Context) (System, error) {
	res, err := c.exec(ctx, "IDENTIFY_SYSTEM")
	if err != nil {
		return System{}, fmt.Errorf("repl: IDENTIFY_SYSTEM: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 4 {
		return System{}, errors.New("repl: IDENTIFY_SYSTEM: unexpected result shape")
	}
	row := res[0].Rows[0]
	var s System
	s.SystemID = string(row[0])
	if _, err := fmt.Sscan(string(row[1]), &s.Timeline); err != nil {
		return System{}, fmt.Errorf("repl: IDENTIFY_SYSTEM timeline: %w", err)
	}
	if s.XLogPos, err = ParseLSN(string(row[2])); err != nil {
		return System{}, err
	}
	s.DBName = string(row[3])
	return s, nil
}

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// ValidSlotName reports whether name is a valid replication slot name.
func ValidSlotName(name string) error {
	if !slotName.MatchString(name) {
		return fmt.Errorf("repl: slot name %q: use 1-63 of a-z, 0-9 and _", name)
	}
	return nil
}

// Slot is the answer to CREATE_REPLICATION_SLOT.
type Slot struct {
	Name string
	// ConsistentPoint is where the slot's stream starts: every transaction
	// committed before it is visible in Snapshot, none after.
	ConsistentPoint LSN
	// Snapshot names the exported snapshot, valid until this connection
	// runs its next command or closes.
	Snapshot string
}

// CreateSlot creates a logical slot for pgoutput and exports its snapshot.
// A temporary slot is dropped when the connection closes.
func (c *Conn) CreateSlot(ctx context.Context, name string, temporary bool) (Slot, error) {
	if err := ValidSlotName(name); err != nil {
		return Slot{}, err
	}
	temp := ""
	if temporary {
		temp = " TEMPORARY"
	}
	sql := fmt.Sprintf(`CREATE_REPLICATION_SLOT %s%s LOGICAL pgoutput (SNAPSHOT 'export')`, name, temp)
	res, err := c.exec(ctx, sql)
	if err != nil {
		return Slot{}, fmt.Errorf("repl: create slot %s: %w", name, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 3 {
		return Slot{}, errors.New("repl: CREATE_REPLICATION_SLOT: unexpected result shape")
	}
	row := res[0].Rows[0]
	lsn, err := ParseLSN(string(row[1]))
	if err != nil {
		return Slot{}, err
	}
	return Slot{Name: string(row[0]), ConsistentPoint: lsn, Snapshot: string(row[2])}, nil
}

// DropSlot drops a slot, waiting for an active one to be released when
// wait is set.
func (c *Conn) DropSlot(ctx context.Context, name string, wait bool) error {
	if err := ValidSlotName(name); err != nil {
		return err
	}
	sql := "DROP_REPLICATION_SLOT " + name
	if wait {
		sql += " WAIT"
	}
	if _, err := c.exec(ctx, sql); err != nil {
		return fmt.Errorf("repl: drop slot %s: %w", name, err)
	}
	return nil
}

// Options are the pgoutput plugin options of START_REPLICATION.
type Options struct {
	Publications []string
	// Streaming asks for in-progress transactions (protocol v2 streaming).
	Streaming bool
	// Messages asks for pg_logical_emit_message payloads.
	Messages bool
}

func (o Options) args() string {
	pubs := make([]string, len(o.Publications))
	for i, p := range o.Publications {
		pubs[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	args := []string{"proto_version '2'", "publication_names " + quoteLiteral(strings.Join(pubs, ","))}
	if o.Streaming {
		args = append(args, "streaming 'on'")
	}
	if o.Messages {
		args = append(args, "messages 'true'")
	}
	return strings.Join(args, ", ")
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
