package repl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Frame is one message of the CopyBoth stream: XLogData ('w') or a primary
// keepalive ('k').
type Frame struct {
	Kind byte // 'w' or 'k'
	// WALStart is the position of Data in the WAL (XLogData only).
	WALStart LSN
	// ServerWALEnd is the end of WAL on the server.
	ServerWALEnd   LSN
	ServerTime     time.Time
	ReplyRequested bool   // keepalive only
	Data           []byte // XLogData payload: one pgoutput message
}

var errShortFrame = errors.New("repl: short CopyData message")

// ParseFrame decodes a CopyData payload sent by the server. data is not
// retained: the XLogData payload is copied.
func ParseFrame(data []byte) (Frame, error) {
	if len(data) == 0 {
		return Frame{}, errShortFrame
	}
	switch data[0] {
	case 'w':
		if len(data) < 25 {
			return Frame{}, errShortFrame
		}
		return Frame{
			Kind:         'w',
			WALStart:     LSN(binary.BigEndian.Uint64(data[1:])),
			ServerWALEnd: LSN(binary.BigEndian.Uint64(data[9:])),
			ServerTime:   PGTime(int64(binary.BigEndian.Uint64(data[17:]))),
			Data:         append([]byte(nil), data[25:]...),
		}, nil
	case 'k':
		if len(data) < 18 {
			return Frame{}, errShortFrame
		}
		return Frame{
			Kind:           'k',
			ServerWALEnd:   LSN(binary.BigEndian.Uint64(data[1:])),
			ServerTime:     PGTime(int64(binary.BigEndian.Uint64(data[9:]))),
			ReplyRequested: data[17] == 1,
		}, nil
	}
	return Frame{}, fmt.Errorf("repl: unknown CopyData message %q", data[0])
}

// StatusUpdate encodes a standby status update ('r'). written and flushed
// are the positions after the last byte received and made durable;
// PostgreSQL advances the slot's confirmed_flush_lsn to flushed.
func StatusUpdate(written, flushed, applied LSN, now time.Time, replyRequested bool) []byte {
	b := make([]byte, 34)
	b[0] = 'r'
	binary.BigEndian.PutUint64(b[1:], uint64(written))
	binary.BigEndian.PutUint64(b[9:], uint64(flushed))
	binary.BigEndian.PutUint64(b[17:], uint64(applied))
	binary.BigEndian.PutUint64(b[25:], uint64(now.Sub(PGTime(0)).Microseconds()))
	if replyRequested {
		b[33] = 1
	}
	return b
}
