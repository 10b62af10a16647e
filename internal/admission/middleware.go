package admission

import (
	"context"
	"errors"
	"net/http"
	"sync"
)

// Header names of claims and of stale answers.
const (
	// SourceHeader carries the claimed source (app, web, partner, …).
	SourceHeader = "Bulwark-Source"
	// TrafficHeader carries the claimed traffic type (normal, batch, crawler, …).
	TrafficHeader = "Bulwark-Traffic"
	// StaleHeader is set to "true" on an answer served from a stale cache
	// entry; Age then says how old the entry is, in seconds.
	StaleHeader = "Bulwark-Stale"
)

// Middleware admits each request before next sees it. classify builds the
// Request from the HTTP request (tenant and entitlements from the auth
// layer, which must run before this middleware, route from the router,
// claims from SourceHeader and TrafficHeader).
//
// A rejected request is answered with problem+json (status 429 or 503,
// members stage, reason, priority) and Retry-After, in microseconds and
// without touching next. A request classified StaleOK and shed for overload
// goes on to next with the rejection in its context (see RejectionFrom), so
// that its handler can answer from a stale cache through Reads.
//
// The outcome reported to the estimate comes from the response: 2xx and
// 3xx are Success, 503 and 504 Dropped, other statuses Failure; a request
// whose context ended (client gone or deadline) is Dropped, a panic is
// Failure.
func (c *Controller) Middleware(classify func(*http.Request) Request, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := classify(r)
		t, err := c.admitTraced(r.Context(), req)
		if err != nil {
			if req.StaleOK && errors.Is(err, ErrOverloaded) {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), rejectionKey{}, err)))
				return
			}
			WriteError(w, err)
			return
		}
		rec := recorderPool.Get().(*recorder)
		rec.ResponseWriter, rec.status = w, 0
		finished := false
		defer func() {
			t.Done(rec.outcome(r.Context(), finished))
			rec.ResponseWriter = nil
			recorderPool.Put(rec)
		}()
		next.ServeHTTP(rec, r)
		finished = true
	})
}

type rejectionKey struct{}

// RejectionFrom returns the rejection of a StaleOK request that the
// middleware passed on after shedding it, or nil if it was admitted.
func RejectionFrom(ctx context.Context) *Rejection {
	err, _ := ctx.Value(rejectionKey{}).(error)
	var rej *Rejection
	if errors.As(err, &rej) {
		return rej
	}
	return nil
}

var recorderPool = sync.Pool{New: func() any { return new(recorder) }}

// recorder remembers the status a handler wrote.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush, deadlines and hijacking.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) outcome(ctx context.Context, finished bool) Outcome {
	switch {
	case !finished:
		return Failure // the handler panicked
	case ctx.Err() != nil:
		return Dropped // deadline passed or the client gave up waiting
	case r.status == 0 || r.status < 400:
		return Success
	case r.status == http.StatusServiceUnavailable || r.status == http.StatusGatewayTimeout:
		return Dropped
	}
	return Failure
}
