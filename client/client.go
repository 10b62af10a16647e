package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxResponseBytes bounds an answer read into memory: a batch of 8,190
// results × ~500 B ≈ 4 MiB, with room to spare.
const maxResponseBytes = 32 << 20

// Backoff between attempts: exponential from backoffBase, capped at
// backoffMax, each wait drawn from [d/2, d] (jitter, so that clients shed
// together do not come back together), and never shorter than the
// server's Retry-After.
const (
	backoffBase = 25 * time.Millisecond
	backoffMax  = 2 * time.Second
)

// Client calls one Bulwark server with one API key. It is safe for
// concurrent use; create one per server and key and share it, since it
// holds the connection pool and the batcher. Close it when done.
type Client struct {
	base    string // scheme://host[:port][/prefix], no trailing slash
	auth    string // Authorization header value
	cfg     config
	batcher *batcher // nil without automatic batching
}

// New returns a client of the server at baseURL (e.g.
// "http://127.0.0.1:8080") using key (a tenant key bwk_…, or the admin key
// for the admin calls). Options are validated: a contradiction or a value
// out of range is an error. With automatic batching (the default) New
// starts one goroutine; Close stops it.
func New(baseURL, key string, opts ...Option) (*Client, error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		cfg.errs = append(cfg.errs, fmt.Errorf("base URL %q: want http(s)://host[:port][/path]", baseURL))
	}
	if key == "" || strings.ContainsAny(key, " \t\r\n") {
		cfg.errs = append(cfg.errs, errors.New("key: want a non-empty API key without white space"))
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("bulwark client: %w", err)
	}
	if cfg.hc == nil {
		cfg.hc = defaultHTTPClient()
	}
	c := &Client{base: strings.TrimSuffix(baseURL, "/"), auth: "Bearer " + key, cfg: cfg}
	if cfg.batching {
		c.batcher = newBatcher(c, cfg.batchItems, cfg.linger, cfg.inFlight)
	}
	return c, nil
}

// Close stops the batcher after sending what it has gathered and waits for
// the batches on the wire to be answered (their callers get their
// results). Later Transfer calls return ErrClosed; other calls still work.
// Close is idempotent.
func (c *Client) Close() {
	if c.batcher != nil {
		c.batcher.close()
	}
}

// request is one API call.
type request struct {
	method, path string
	query        url.Values
	body         any // JSON-encoded; nil: no body
	async        bool
	// idempotent says that sending the request twice does no harm (reads,
	// transactions with their keys, account creation), so it is retried
	// after transport errors and every temporary problem; otherwise only
	// after problems that say it was not started (overloaded).
	idempotent bool
}

// answer is what a successful call returned besides its body.
type answer struct {
	status int
	header http.Header
}

// do sends r, retrying as the retry policy allows, and decodes a 2xx
// answer into out (unless nil). An error answer is an *Error.
func (c *Client) do(ctx context.Context, r *request, out any) (answer, error) {
	var body []byte
	if r.body != nil {
		// No HTML escaping: "<" stays one byte, so the batcher's size
		// estimate holds and metadata is stored as given.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r.body); err != nil {
			return answer{}, fmt.Errorf("bulwark: encode %s %s: %w", r.method, r.path, err)
		}
		body = buf.Bytes()
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		a, err := c.attempt(ctx, r, body, out)
		if err == nil {
			return a, nil
		}
		wait, retry := c.retryable(ctx, r, err)
		if !retry || attempt >= c.cfg.maxAttempts {
			return a, err
		}
		wait = max(wait, backoff(attempt))
		if time.Since(start)+wait > c.cfg.maxElapsed {
			return a, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return a, fmt.Errorf("bulwark: %s %s: %w (last attempt: %w)", r.method, r.path, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// transportError is a request that got no answer: the connection failed
// or the attempt timed out. The write may or may not have happened.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// retryable says whether err may be retried and the least wait.
func (c *Client) retryable(ctx context.Context, r *request, err error) (time.Duration, bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	var te *transportError
	if errors.As(err, &te) {
		return 0, r.idempotent
	}
	var e *Error
	if !errors.As(err, &e) || !e.Temporary() {
		return 0, false
	}
	return e.RetryAfter, r.idempotent || e.Code == "overloaded"
}

func backoff(attempt int) time.Duration {
	d := backoffBase << min(attempt-1, 16)
	d = min(d, backoffMax)
	return d/2 + rand.N(d/2+1)
}

// attempt sends r once.
func (c *Client) attempt(ctx context.Context, r *request, body []byte, out any) (answer, error) {
	claims, _, err := c.claimsOf(ctx)
	if err != nil {
		return answer{}, fmt.Errorf("bulwark: %s %s: %w", r.method, r.path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return answer{}, fmt.Errorf("bulwark: %s %s: %w", r.method, r.path, err)
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.async {
		req.Header.Set("Prefer", "respond-async")
	}
	if claims.Source != "" {
		req.Header.Set(SourceHeader, claims.Source)
	}
	if claims.Traffic != "" {
		req.Header.Set(TrafficHeader, claims.Traffic)
	}
	resp, err := c.cfg.hc.Do(req)
	if err != nil {
		return answer{}, &transportError{fmt.Errorf("bulwark: %s %s: %w", r.method, r.path, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return answer{}, &transportError{fmt.Errorf("bulwark: %s %s: read answer: %w", r.method, r.path, err)}
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode >= 300 {
		var p problemBody
		_ = json.Unmarshal(data, &p) // a body that is no problem still yields an *Error
		return a, p.toError(resp.StatusCode, resp.Header)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(data, out); err != nil {
			return a, fmt.Errorf("bulwark: %s %s: decode answer: %w", r.method, r.path, err)
		}
	}
	return a, nil
}

// seg escapes one path segment: a "/" inside an account id becomes %2F.
func seg(s string) string { return url.PathEscape(s) }
