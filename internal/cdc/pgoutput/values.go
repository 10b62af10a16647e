package pgoutput

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Type OIDs of the builtin types decoded into native JSON values. Every other
// builtin type (OID below FirstNormalOID), every array, and every
// non-builtin type announced by a Type message is kept as its text form.
const (
	OIDBool        = 16
	OIDBytea       = 17
	OIDChar        = 18
	OIDName        = 19
	OIDInt8        = 20
	OIDInt2        = 21
	OIDInt4        = 23
	OIDText        = 25
	OIDOid         = 26
	OIDJSON        = 114
	OIDFloat4      = 700
	OIDFloat8      = 701
	OIDBpchar      = 1042
	OIDVarchar     = 1043
	OIDDate        = 1082
	OIDTime        = 1083
	OIDTimestamp   = 1114
	OIDTimestamptz = 1184
	OIDInterval    = 1186
	OIDNumeric     = 1700
	OIDUUID        = 2950
	OIDJSONB       = 3802

	// FirstNormalOID is where user-defined objects start (FirstNormalObjectId).
	FirstNormalOID = 16384
)

// ErrUnknownType is returned for a column whose type is neither builtin nor
// announced by a Type message earlier in the stream.
var ErrUnknownType = errors.New("pgoutput: unknown type OID")

// Value converts one text-format column value to a JSON-ready Go value:
// bool, json.Number (integers, numeric and floats keep their exact text),
// string, json.RawMessage (json, jsonb), []byte (bytea, encoded as base64 by
// encoding/json). Timestamps with time zone become RFC 3339 in UTC; other
// date and time types keep PostgreSQL's ISO text. known reports whether a
// non-builtin OID was announced by a Type message.
func Value(oid uint32, text []byte, known func(uint32) bool) (any, error) {
	s := string(text)
	switch oid {
	case OIDBool:
		switch s {
		case "t":
			return true, nil
		case "f":
			return false, nil
		}
		return nil, fmt.Errorf("pgoutput: bad bool %q", s)
	case OIDInt2, OIDInt4, OIDInt8, OIDOid, OIDNumeric, OIDFloat4, OIDFloat8:
		if !isJSONNumber(s) {
			return s, nil // NaN, Infinity, -Infinity
		}
		return json.Number(s), nil
	case OIDJSON, OIDJSONB:
		if !json.Valid(text) {
			return nil, fmt.Errorf("pgoutput: invalid json value")
		}
		return json.RawMessage(s), nil
	case OIDBytea:
		if !strings.HasPrefix(s, `\x`) {
			return nil, fmt.Errorf("pgoutput: bytea not in hex format (set bytea_output=hex)")
		}
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			return nil, fmt.Errorf("pgoutput: bad bytea: %w", err)
		}
		return b, nil
	case OIDTimestamptz:
		return timestamptz(s), nil
	}
	if oid < FirstNormalOID || (known != nil && known(oid)) {
		return s, nil
	}
	return nil, fmt.Errorf("%w %d", ErrUnknownType, oid)
}

// timestamptz normalises PostgreSQL's ISO output ("2024-01-02 03:04:05.5+01")
// to RFC 3339 in UTC; values it cannot parse (infinity, BC dates) stay as text.
func timestamptz(s string) string {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999-07:00:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Format(time.RFC3339Nano)
		}
	}
	return s
}

// isJSONNumber reports whether s is valid JSON number syntax.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	start := i
	if digits() == 0 {
		return false
	}
	if s[start] == '0' && i-start > 1 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
