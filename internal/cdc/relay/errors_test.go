package relay

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TestFatal: what stops Run is decided by type and SQLSTATE, wrapped or not.
func TestFatal(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: sqlstateInsufficientPrivilege}, true},
		{fmt.Errorf("connect: %w", &pgconn.PgError{Code: sqlstateInvalidAuthorization}), true},
		// Undefined object alone is not fatal: only the catalog can say it
		// is the publication (classifyStreamErr).
		{&pgconn.PgError{Code: sqlstateUndefinedObject, Message: "publication \"p\" does not exist"}, false},
		{fmt.Errorf("x: %w", ErrPublicationMissing), true},
		{fmt.Errorf("x: %w", ErrSlotInvalidated), true},
		{fmt.Errorf("produce: %w", kerr.MessageTooLarge), true},
		{fmt.Errorf("produce: %w", kerr.NotLeaderForPartition), false},
		{fmt.Errorf("%w: late", ErrCheckpointUnreadable), false},
		{errors.New("connection reset"), false},
	} {
		if got := fatal(tc.err); got != tc.want {
			t.Errorf("fatal(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
