package ledger

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// oneByOne runs queued statements one round trip each, in the order the
// batch readers ask for them: the same statements and reading code as the
// pipeline, without pipelining. It backs PipelineConfig.Naive.
//
// It keeps ctx in the struct against house style because it implements
// pgx.BatchResults, whose methods take no context; it lives for one batch
// of one attempt and is never shared.
type oneByOne struct {
	ctx    context.Context
	conn   *pgx.Conn
	queued []*pgx.QueuedQuery
	next   int
	err    error
}

var _ pgx.BatchResults = (*oneByOne)(nil)

func (o *oneByOne) pop() (*pgx.QueuedQuery, error) {
	if o.next >= len(o.queued) {
		return nil, errors.New("ledger: no more queued statements")
	}
	q := o.queued[o.next]
	o.next++
	return q, nil
}

func (o *oneByOne) Exec() (pgconn.CommandTag, error) {
	q, err := o.pop()
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return o.conn.Exec(o.ctx, q.SQL, q.Arguments...)
}

func (o *oneByOne) Query() (pgx.Rows, error) {
	q, err := o.pop()
	if err != nil {
		return nil, err
	}
	return o.conn.Query(o.ctx, q.SQL, q.Arguments...) //nolint:rowserrcheck // returned to the caller, which reads it as a batch result
}

func (o *oneByOne) QueryRow() pgx.Row {
	q, err := o.pop()
	if err != nil {
		return errRow{err}
	}
	return o.conn.QueryRow(o.ctx, q.SQL, q.Arguments...)
}

// Close runs the statements nobody read (the writes), stopping at the first
// error as a pipelined batch would.
func (o *oneByOne) Close() error {
	for o.next < len(o.queued) && o.err == nil {
		_, o.err = o.Exec()
	}
	return o.err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// Tx is nil: the statements manage their own transaction (BEGIN/COMMIT).
func (o *oneByOne) Tx() pgx.Tx { return nil }
