package schema

import (
	"github.com/pressly/goose/v3/lock"
)

// newLocker returns goose's PostgreSQL advisory session locker so that
// several `bulwark serve` processes starting together migrate one at a time.
func newLocker() (lock.SessionLocker, error) {
	return lock.NewPostgresSessionLocker()
}
