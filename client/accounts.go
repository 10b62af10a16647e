package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// maxEntriesPage is the server's largest page of entries.
const maxEntriesPage = 1000

// CreateAccount creates an account. Creating an identical account again
// returns the existing one, so the call is safe to retry; the same id with
// other attributes is ErrAccountExists.
func (c *Client) CreateAccount(ctx context.Context, in AccountInput) (*Account, error) {
	if err := validAccountID(in.ID, true); err != nil {
		return nil, err
	}
	if !assetPattern.MatchString(in.Asset) {
		return nil, newError("invalid_request", -1, "asset %q must match %s", in.Asset, assetPattern)
	}
	if in.Scale < 0 || in.Scale > 38 {
		return nil, newError("invalid_request", -1, "scale %d: want 0 to 38", in.Scale)
	}
	var out Account
	_, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/accounts", body: in, idempotent: true}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Account reads an account with its current balances. Account.Stale is set
// when the server answered from its cache because the read was shed.
func (c *Client) Account(ctx context.Context, id string) (*Account, error) {
	if err := validAccountID(id, false); err != nil {
		return nil, err
	}
	var out Account
	a, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/accounts/" + seg(id), idempotent: true}, &out)
	if err != nil {
		return nil, err
	}
	out.Stale = a.header.Get("Bulwark-Stale") == "true"
	return &out, nil
}

// Balance reads an account's balances as of at (the zero time: now).
// History that was archived is ErrHistoryArchived.
func (c *Client) Balance(ctx context.Context, id string, at time.Time) (*Balance, error) {
	if err := validAccountID(id, false); err != nil {
		return nil, err
	}
	q := url.Values{}
	if !at.IsZero() {
		q.Set("at", at.UTC().Format(time.RFC3339Nano))
	}
	var out Balance
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/accounts/" + seg(id) + "/balance", query: q, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Entries returns up to limit (1 to 1000; 0 means 100) entries of the
// account with seq > afterSeq, in chain order. Pass the page's
// NextAfterSeq as afterSeq for the next page; it is 0 at the end.
func (c *Client) Entries(ctx context.Context, id string, afterSeq int64, limit int) (*EntryPage, error) {
	if err := validAccountID(id, false); err != nil {
		return nil, err
	}
	if afterSeq < 0 || limit < 0 || limit > maxEntriesPage {
		return nil, newError("invalid_request", -1, "after_seq %d, limit %d: want after_seq >= 0 and limit 1 to %d", afterSeq, limit, maxEntriesPage)
	}
	q := url.Values{"after_seq": {strconv.FormatInt(afterSeq, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out EntryPage
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/accounts/" + seg(id) + "/entries", query: q, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
