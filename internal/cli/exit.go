package cli

import "errors"

// Exit codes of bulwark: 1 for a failure (and a failed load verdict), 2
// for bad input refused before anything was done.
const (
	ExitFailure  = 1
	ExitBadInput = 2
)

// exitError carries the exit code of an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode is the process exit code for an error returned by Root: 0 for
// nil, the code an exitError carries, else ExitFailure.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return ExitFailure
}
