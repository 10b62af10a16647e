package relay

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// The envelope is encoded by hand: encoding/json's reflection and its
// re-validation of json.RawMessage cost about a fifth of the relay's CPU in
// `bulwark bench cdc`. The output is the same JSON (FuzzEnvelope compares).

// appendEvent appends ev as JSON; equivalent to json.Marshal(ev).
func appendEvent(b []byte, ev *Event) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, ev.ID)
	b = append(b, `,"op":`...)
	b = appendString(b, ev.Op)
	b = append(b, `,"before":`...)
	b = appendRaw(b, ev.Before)
	b = append(b, `,"after":`...)
	b = appendRaw(b, ev.After)
	if len(ev.Unchanged) > 0 {
		b = append(b, `,"unchanged_toast":[`...)
		for i, u := range ev.Unchanged {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, u)
		}
		b = append(b, ']')
	}
	s := &ev.Source
	b = append(b, `,"source":{"db":`...)
	b = appendString(b, s.Database)
	b = append(b, `,"schema":`...)
	b = appendString(b, s.Schema)
	b = append(b, `,"table":`...)
	b = appendString(b, s.Table)
	b = append(b, `,"lsn":`...)
	b = appendString(b, s.LSN)
	b = append(b, `,"commit_lsn":`...)
	b = appendString(b, s.CommitLSN)
	if s.Xid != 0 {
		b = append(b, `,"xid":`...)
		b = strconv.AppendUint(b, uint64(s.Xid), 10)
	}
	b = append(b, `,"commit_time":"`...)
	b = s.CommitTime.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","pos":`...)
	b = strconv.AppendInt(b, s.Pos, 10)
	if s.Snapshot {
		b = append(b, `,"snapshot":true`...)
	}
	return append(b, "}}"...)
}

func appendRaw(b []byte, raw json.RawMessage) []byte {
	if raw == nil {
		return append(b, "null"...)
	}
	return append(b, raw...)
}

// appendValue appends one decoded column value (see pgoutput.Value).
func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case json.Number:
		return append(b, v...), nil // syntax checked by pgoutput.Value
	case string:
		return appendString(b, v), nil
	case json.RawMessage:
		return appendCompact(b, v)
	case []byte:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, '"'), nil
	}
	js, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, js...), nil
}

// appendCompact appends a JSON document without insignificant space, as
// encoding/json does for json.RawMessage.
func appendCompact(b []byte, raw json.RawMessage) ([]byte, error) {
	inString, escaped := false, false
	for _, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		}
		b = append(b, c)
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029
// escaped (as encoding/json does; HTML characters are left as they are).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
