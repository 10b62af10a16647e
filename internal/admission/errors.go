package admission

import (
	"errors"
	"net/http"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/problem"
)

// Sentinel errors of a rejection; test with errors.Is. Both are safe to
// retry after the rejection's RetryAfter: the request was not started.
var (
	// ErrOverloaded: the server sheds load (503).
	ErrOverloaded = errors.New("admission: overloaded")
	// ErrQuota: the tenant's quota, or its quota of the traffic type it
	// claims, is spent (429).
	ErrQuota = errors.New("admission: tenant quota exceeded")
)

// Problem codes of rejections (entries of problem's table).
const (
	CodeOverloaded = problem.CodeOverloaded
	CodeQuota      = problem.CodeQuotaExceeded
)

// Rejection is the error Admit returns when it turns a request away.
// errors.Is(err, ErrQuota) holds for reason quota, errors.Is(err,
// ErrOverloaded) for every other reason.
type Rejection struct {
	Stage      Stage
	Reason     Reason
	Priority   Priority
	RetryAfter time.Duration
}

func (r *Rejection) Error() string {
	return r.sentinel().Error() + " (stage " + r.Stage.String() + ", reason " + r.Reason.String() +
		", priority " + r.Priority.String() + ", retry after " + r.RetryAfter.String() + ")"
}

func (r *Rejection) sentinel() error {
	if r.isQuota() {
		return ErrQuota
	}
	return ErrOverloaded
}

func (r *Rejection) isQuota() bool { return r.Reason == ReasonQuota || r.Reason == ReasonTrafficQuota }

// Is makes errors.Is match the sentinel of the reason.
func (r *Rejection) Is(target error) bool { return target == r.sentinel() }

// Status is the HTTP status of the rejection: 429 or 503.
func (r *Rejection) Status() int {
	if r.isQuota() {
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}

// Problem builds the problem document, with members stage, reason and
// priority.
func (r *Rejection) Problem() *problem.Problem {
	code, detail, stage := CodeOverloaded, "the server is shedding load; retry after the Retry-After delay", r.Stage.String()
	switch r.Reason {
	case ReasonQuota:
		code, detail = CodeQuota, "the tenant's request quota is spent; retry after the Retry-After delay"
	case ReasonTrafficQuota:
		// Not an overload stage: the traffic quota is checked first.
		code, detail, stage = CodeQuota, "the tenant's quota of this traffic type is spent; retry after the Retry-After delay", "quota"
	}
	return problem.New(code, detail).
		With("stage", stage).
		With("reason", r.Reason.String()).
		With("priority", int(r.Priority))
}

// Answer implements problem.Answer.
func (r *Rejection) Answer() (*problem.Problem, time.Duration) { return r.Problem(), r.RetryAfter }

// WriteError writes err as problem+json with Retry-After if it is (or
// wraps) a *Rejection, and reports whether it did. Anything else is left to
// the caller.
func WriteError(w http.ResponseWriter, err error) bool {
	var rej *Rejection
	if !errors.As(err, &rej) {
		return false
	}
	problem.Write(w, rej.Problem(), rej.RetryAfter)
	return true
}
