package repl

import (
	"fmt"
	"time"
)

// LSN is a PostgreSQL write-ahead log position. It belongs to the
// replication protocol (positions to start from and to confirm); the
// pgoutput decoder uses it too, through an alias.
type LSN uint64

// String formats the LSN the way PostgreSQL does (high/low in hex).
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// ParseLSN parses the textual LSN form "hi/lo" (two hex numbers), e.g. "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	return LSN(uint64(hi)<<32 | uint64(lo)), nil
}

// MarshalText encodes the LSN in PostgreSQL's form, for JSON.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText parses PostgreSQL's form.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	*l = v
	return err
}

// pgEpoch is the origin of PostgreSQL's timestamps (microseconds since).
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// PGTime converts microseconds since 2000-01-01 UTC, PostgreSQL's wire
// timestamps, to a time.Time.
func PGTime(us int64) time.Time { return pgEpoch.Add(time.Duration(us) * time.Microsecond) }
