package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
)

// CallOption adjusts one call.
type CallOption func(*callConfig)

type callConfig struct{ noBatch bool }

// NoBatch sends this Transfer as its own request, not through the batcher
// (lowest latency when the caller is alone; no coalescing).
func NoBatch() CallOption { return func(c *callConfig) { c.noBatch = true } }

// Transfer commits one transaction (any type; posted by default) and
// returns it. With automatic batching (the default), concurrent calls
// from many goroutines are coalesced into batch requests, each caller
// receiving its own transaction or error; a grouped Tx (Group set), a
// NoBatch call, a call whose ContextWithClaims differ from the client's
// and a client made WithoutBatching send the transaction alone. It
// blocks until the answer, ctx's end or the retry bounds.
//
// An invalid Tx is refused before anything is sent, with the server's
// code. On an error that is not an *Error (transport failure, ctx ended),
// the transaction may or may not have committed: call Transfer again with
// the same IdempotencyKey, which commits it at most once.
func (c *Client) Transfer(ctx context.Context, tx Tx, opts ...CallOption) (*Transaction, error) {
	var cc callConfig
	for _, o := range opts {
		o(&cc)
	}
	if tx.IdempotencyKey == "" {
		tx.IdempotencyKey = newKey()
	}
	if err := validateTx(&tx); err != nil {
		return nil, err
	}
	_, ownClass, err := c.claimsOf(ctx)
	if err != nil {
		return nil, err
	}
	if c.batcher != nil && !cc.noBatch && !ownClass && tx.Group == "" {
		return c.batcher.submit(ctx, &tx)
	}
	var out Transaction
	a, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/transactions", body: &tx, idempotent: true}, &out)
	if err != nil {
		return nil, err
	}
	out.Replayed = a.header.Get("Idempotent-Replayed") == "true"
	return &out, nil
}

// Pending reserves funds (phase one of a two-phase transfer): tx with
// type pending, expiring after tx.TimeoutSeconds (0: never). It is
// batched like Transfer.
func (c *Client) Pending(ctx context.Context, tx Tx, opts ...CallOption) (*Transaction, error) {
	tx.Type = TypePending
	return c.Transfer(ctx, tx, opts...)
}

// PostPending posts the pending transaction pendingID under key: in full
// when amount is "", else amount of it (single-posting pending only) and
// releases the rest.
func (c *Client) PostPending(ctx context.Context, key, pendingID string, amount Amount, opts ...CallOption) (*Transaction, error) {
	return c.Transfer(ctx, Tx{IdempotencyKey: key, Type: TypePostPending, PendingID: pendingID, Amount: amount}, opts...)
}

// VoidPending releases the pending transaction pendingID under key.
func (c *Client) VoidPending(ctx context.Context, key, pendingID string, opts ...CallOption) (*Transaction, error) {
	return c.Transfer(ctx, Tx{IdempotencyKey: key, Type: TypeVoidPending, PendingID: pendingID}, opts...)
}

type batchBody struct {
	Transactions []Tx `json:"transactions"`
}

// Submit commits up to MaxBatch transactions in one request and returns
// one Result per transaction, in order: its transaction, or its error when
// it alone was rejected (transactions of a failed Group get
// ErrLinkedTransactionFailed). An invalid transaction rejects the whole
// batch with an *Error whose Index names it, and nothing is written.
// Empty keys are filled in; txs is not modified.
func (c *Client) Submit(ctx context.Context, txs []Tx) ([]Result, error) {
	txs, err := prepareBatch(txs)
	if err != nil {
		return nil, err
	}
	return c.postBatch(ctx, txs)
}

func prepareBatch(txs []Tx) ([]Tx, error) {
	txs = slices.Clone(txs)
	for i := range txs {
		if txs[i].IdempotencyKey == "" {
			txs[i].IdempotencyKey = newKey()
		}
	}
	if err := validateBatch(txs); err != nil {
		return nil, err
	}
	return txs, nil
}

// postBatch sends valid txs as one batch, retried with the same body.
func (c *Client) postBatch(ctx context.Context, txs []Tx) ([]Result, error) {
	var out struct {
		Results []resultBody `json:"results"`
	}
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/transactions/batch", body: batchBody{txs}, idempotent: true}, &out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(txs) {
		return nil, newError("internal", -1, "batch answer has %d results for %d transactions", len(out.Results), len(txs))
	}
	res := make([]Result, len(txs))
	for i := range out.Results {
		res[i] = out.Results[i].result()
	}
	return res, nil
}

// SubmitAsync journals up to MaxBatch transactions (Prefer:
// respond-async) and returns the journal entry: durable, applied exactly
// once, later. Poll Journal with its ID for the outcome. Resending the
// same transactions returns the same entry.
func (c *Client) SubmitAsync(ctx context.Context, txs []Tx) (*JournalEntry, error) {
	txs, err := prepareBatch(txs)
	if err != nil {
		return nil, err
	}
	var out journalBody
	r := &request{method: http.MethodPost, path: "/v1/transactions/batch", body: batchBody{txs}, async: true, idempotent: true}
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return out.entry(), nil
}

// Journal reads the status of an asynchronous request.
func (c *Client) Journal(ctx context.Context, id string) (*JournalEntry, error) {
	var out journalBody
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/journal/" + seg(id), idempotent: true}, &out); err != nil {
		return nil, err
	}
	return out.entry(), nil
}

// TransactionByID reads a transaction by its id.
func (c *Client) TransactionByID(ctx context.Context, id string) (*Transaction, error) {
	var out Transaction
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/transactions/" + seg(id), idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TransactionByKey reads a transaction by its idempotency key.
func (c *Client) TransactionByKey(ctx context.Context, key string) (*Transaction, error) {
	if key == "" {
		return nil, newError("invalid_request", -1, "idempotency_key is required")
	}
	var out Transaction
	r := &request{method: http.MethodGet, path: "/v1/transactions", query: url.Values{"idempotency_key": {key}}, idempotent: true}
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// newKey returns a random idempotency key: 128 bits, so that two never
// collide.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "bwc_" + hex.EncodeToString(b[:])
}
