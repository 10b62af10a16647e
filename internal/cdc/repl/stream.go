package repl

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// MaxBufferedFrames bounds the frames received but not yet taken by Recv.
// Each holds one pgoutput message (one row change, typically well under
// 1 KiB; at most one row of up to 1 GiB in theory), so 256 frames of
// ordinary rows are a few hundred KiB. When full, the reader stops reading
// and TCP flow control slows the walsender.
const MaxBufferedFrames = 256

// ErrStreamEnded is returned by Recv when the server ended the copy stream.
var ErrStreamEnded = errors.New("repl: server ended the replication stream")

// Stream is a running START_REPLICATION.
type Stream struct {
	conn   *Conn
	frames chan Frame
	done   chan struct{} // closed when the reader exits
	err    error         // set before done is closed

	writeMu sync.Mutex
}

// StartReplication starts streaming slot from start (0 means the slot's
// confirmed position). The returned Stream owns the connection until Close.
func (c *Conn) StartReplication(ctx context.Context, slot string, start LSN, opts Options) (*Stream, error) {
	if err := ValidSlotName(slot); err != nil {
		return nil, err
	}
	sql := fmt.Sprintf("START_REPLICATION SLOT %s LOGICAL %s (%s)", slot, start, opts.args())
	c.pg.Frontend().Send(&pgproto3.Query{String: sql})
	if err := c.pg.Frontend().Flush(); err != nil {
		return nil, fmt.Errorf("repl: send START_REPLICATION: %w", err)
	}
	for {
		msg, err := c.pg.ReceiveMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("repl: START_REPLICATION: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyBothResponse:
			s := &Stream{conn: c, frames: make(chan Frame, MaxBufferedFrames), done: make(chan struct{})}
			go s.read()
			return s, nil
		case *pgproto3.ErrorResponse:
			return nil, fmt.Errorf("repl: START_REPLICATION: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			return nil, fmt.Errorf("repl: START_REPLICATION: unexpected %T", msg)
		}
	}
}

func (s *Stream) read() {
	defer close(s.done)
	for {
		msg, err := s.conn.pg.ReceiveMessage(context.Background())
		if err != nil {
			s.err = fmt.Errorf("repl: receive: %w", err)
			return
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			f, err := ParseFrame(m.Data)
			if err != nil {
				s.err = err
				return
			}
			s.frames <- f // blocks when full: back-pressure
		case *pgproto3.CopyDone:
			s.err = ErrStreamEnded
			return
		case *pgproto3.ErrorResponse:
			s.err = fmt.Errorf("repl: stream: %w", pgconn.ErrorResponseToPgError(m))
			return
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			s.err = fmt.Errorf("repl: stream: unexpected %T", msg)
			return
		}
	}
}

// Recv returns the next frame, blocking until one arrives, the stream
// fails, or ctx is done.
func (s *Stream) Recv(ctx context.Context) (Frame, error) {
	select {
	case f := <-s.frames:
		return f, nil
	default:
	}
	select {
	case f := <-s.frames:
		return f, nil
	case <-s.done:
		select {
		case f := <-s.frames:
			return f, nil
		default:
		}
		return Frame{}, s.err
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
}

// Frames exposes the frame channel for select loops; check Done and Err
// when it stays empty.
func (s *Stream) Frames() <-chan Frame { return s.frames }

// Done is closed when the reader has stopped; Err then tells why.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err is the reader's terminal error, valid after Done is closed.
func (s *Stream) Err() error { return s.err }

// SendStatus sends a standby status update. flushed is what the server may
// consider durably consumed (the slot's confirmed_flush_lsn).
func (s *Stream) SendStatus(written, flushed LSN, replyRequested bool) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	fe := s.conn.pg.Frontend()
	fe.Send(&pgproto3.CopyData{Data: StatusUpdate(written, flushed, flushed, time.Now(), replyRequested)})
	if err := fe.Flush(); err != nil {
		return fmt.Errorf("repl: send status: %w", err)
	}
	return nil
}

// Close tears the connection down and waits for the reader to exit.
func (s *Stream) Close() {
	_ = s.conn.pg.Conn().Close()
	// Drain so that a reader blocked on a full channel can see the closed
	// connection and exit.
	for {
		select {
		case <-s.frames:
		case <-s.done:
			_ = s.conn.pg.Close(context.Background())
			return
		}
	}
}
