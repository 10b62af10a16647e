package client

import (
	"context"
	"fmt"
	"regexp"
)

// Header names of the claims admission reads (docs/admission.md). A key
// may claim only the sources and traffic types it was created with
// (KeyInput); the server downgrades any other claim to its default.
const (
	SourceHeader  = "Bulwark-Source"
	TrafficHeader = "Bulwark-Traffic"
)

// Claims are the traffic class a request claims: its Source (app, web,
// partner, …) and Traffic type (normal, batch, crawler, …). Admission
// weighs them in the request's priority. Empty fields claim nothing (the
// server's defaults).
type Claims struct {
	Source  string
	Traffic string
}

// claimPattern is what a claim may look like on the wire: short lower-
// case tokens, so a claim can never smuggle a header or a control byte.
var claimPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

func (c Claims) validate() error {
	for _, v := range []struct{ name, val string }{{"source", c.Source}, {"traffic", c.Traffic}} {
		if v.val != "" && !claimPattern.MatchString(v.val) {
			return fmt.Errorf("claims: %s %q: want a lower-case token of at most 32 bytes", v.name, v.val)
		}
	}
	return nil
}

// over returns c with the non-empty fields of o.
func (c Claims) over(o Claims) Claims {
	if o.Source != "" {
		c.Source = o.Source
	}
	if o.Traffic != "" {
		c.Traffic = o.Traffic
	}
	return c
}

// WithClaims sets the claims of every request of the client (default:
// none). A call can override them with ContextWithClaims.
func WithClaims(cl Claims) Option {
	return func(c *config) {
		if err := cl.validate(); err != nil {
			c.errs = append(c.errs, fmt.Errorf("WithClaims: %w", err))
		}
		c.claims = cl
	}
}

type claimsKey struct{}

// ContextWithClaims returns ctx carrying claims for the calls made with
// it; their non-empty fields override the client's (WithClaims). A
// Transfer whose claims differ from the client's is sent alone, not
// through the batcher: one batch request carries one class. An invalid
// claim fails the call before anything is sent.
func ContextWithClaims(ctx context.Context, cl Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, cl)
}

// claimsOf returns the claims of a call made with ctx, and whether they
// differ from the client's.
func (c *Client) claimsOf(ctx context.Context) (Claims, bool, error) {
	cl, ok := ctx.Value(claimsKey{}).(Claims)
	if !ok {
		return c.cfg.claims, false, nil
	}
	if err := cl.validate(); err != nil {
		return Claims{}, false, err
	}
	eff := c.cfg.claims.over(cl)
	return eff, eff != c.cfg.claims, nil
}
