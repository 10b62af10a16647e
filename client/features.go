package client

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"
)

// Limits of the features routes (docs/features.md), checked before sending.
const (
	// MaxEvents is the most events of one SendEvents call.
	MaxEvents = 1000
	// MaxFeatureEntities is the most entities of one ReadFeatures call.
	MaxFeatureEntities = 100
	maxEventIDBytes    = 200
)

// FeatureDefinition is a velocity feature: an aggregation of an event
// field per entity over one or more windows (docs/features.md).
type FeatureDefinition struct {
	Name        string   `json:"name"`
	Source      string   `json:"source"`          // "events" or "ledger"
	Entity      string   `json:"entity"`          // the field holding the entity key: "card", "account", …
	Aggregation string   `json:"aggregation"`     // count, sum, min, max, avg, distinct_count, last
	Field       string   `json:"field,omitempty"` // required unless count
	Windows     []string `json:"windows"`         // "10m", "1h", "7d": 1m to 90d
	Filter      string   `json:"filter,omitempty"`
}

// FeatureVersion is one version of a feature: building (recompute or
// backfill running, Task says how far), active (answering reads) or
// retired.
type FeatureVersion struct {
	Name       string            `json:"name"`
	Version    int32             `json:"version"`
	State      string            `json:"state"`
	Definition FeatureDefinition `json:"definition"`
	CreatedAt  time.Time         `json:"created_at"`
	BuiltAt    *time.Time        `json:"built_at,omitempty"`
	Task       *FeatureTask      `json:"task,omitempty"`
}

// FeatureTask is the progress of the backfill or recompute building a
// version.
type FeatureTask struct {
	Task           string `json:"task"`
	Partitions     int    `json:"partitions"`
	DonePartitions int    `json:"done_partitions"`
	DoneEvents     int64  `json:"done_events"`
	TotalEvents    int64  `json:"total_events"`
}

// DefineFeature creates a feature, or a new version of it when the
// definition changed (reads answer from the old version until the new one
// is built). Defining what is already defined changes nothing, so the
// call is retried safely.
func (c *Client) DefineFeature(ctx context.Context, d FeatureDefinition) (*FeatureVersion, error) {
	var out FeatureVersion
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/features/definitions", body: d, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FeatureDefinitions lists the tenant's live features (the version each
// answers from, and any version being built).
func (c *Client) FeatureDefinitions(ctx context.Context) ([]FeatureVersion, error) {
	var out struct {
		Definitions []FeatureVersion `json:"definitions"`
	}
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/features/definitions", idempotent: true}, &out); err != nil {
		return nil, err
	}
	return out.Definitions, nil
}

// FeatureVersions returns every version of the feature name
// (ErrFeatureNotFound if there is none).
func (c *Client) FeatureVersions(ctx context.Context, name string) ([]FeatureVersion, error) {
	var out struct {
		Versions []FeatureVersion `json:"versions"`
	}
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/features/definitions/" + seg(name), idempotent: true}, &out); err != nil {
		return nil, err
	}
	return out.Versions, nil
}

// DeleteFeature retires every version of the feature name.
func (c *Client) DeleteFeature(ctx context.Context, name string) error {
	_, err := c.do(ctx, &request{method: http.MethodDelete, path: "/v1/features/definitions/" + seg(name), idempotent: true}, nil)
	return err
}

// Event is a tenant event: a client id (the same id sent twice is counted
// once), a time, and flat fields whose values are strings, integers (any
// Go integer, or *big.Int up to ±(2^128-1)) or booleans.
type Event struct {
	ID     string         `json:"id"`
	Time   time.Time      `json:"time"`
	Fields map[string]any `json:"fields"`
}

func validateEvent(i int, e *Event) error {
	if e.ID == "" || len(e.ID) > maxEventIDBytes || strings.IndexByte(e.ID, 0) >= 0 {
		return newError("invalid_event", i, "event id: 1 to %d bytes without U+0000", maxEventIDBytes)
	}
	if e.Time.IsZero() {
		return newError("invalid_event", i, "event %q: time is required", e.ID)
	}
	return nil
}

// SendEvents appends events durably to the tenant's event log (at most
// MaxEvents per call) and returns how many the server accepted. Retries
// are safe: an event id is counted once.
func (c *Client) SendEvents(ctx context.Context, events []Event) (int, error) {
	if len(events) == 0 || len(events) > MaxEvents {
		return 0, newError("invalid_event", -1, "%d events; want 1 to %d", len(events), MaxEvents)
	}
	for i := range events {
		if err := validateEvent(i, &events[i]); err != nil {
			return 0, err
		}
	}
	var out struct {
		Accepted int `json:"accepted"`
	}
	body := struct {
		Events []Event `json:"events"`
	}{events}
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/events", body: body, idempotent: true}, &out); err != nil {
		return 0, err
	}
	return out.Accepted, nil
}

// EntityRef names an entity: the entity field of features ("card") and
// its value ("c-42").
type EntityRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// FeatureResult is one window's value as the server answered it: an exact
// integer (count, sum, min, max, distinct_count, last), a decimal string
// (avg), another string (min, max or last of a text field), or null (an
// empty window for everything but count and sum).
type FeatureResult json.RawMessage

// MarshalJSON and UnmarshalJSON keep the server's text, so integers of
// any size stay exact.
func (r FeatureResult) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

func (r *FeatureResult) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// IsNull says the window had no value.
func (r FeatureResult) IsNull() bool { return len(r) == 0 || string(r) == "null" }

// Int returns an integer result exactly; ok is false for null, strings
// and decimals.
func (r FeatureResult) Int() (n *big.Int, ok bool) {
	s := strings.TrimSpace(string(r))
	if s == "" || s == "null" || s[0] == '"' {
		return nil, false
	}
	return new(big.Int).SetString(s, 10)
}

// String returns the result as text: a string result unquoted, a number
// as written, "null" for no value.
func (r FeatureResult) String() string {
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	if len(r) == 0 {
		return "null"
	}
	return string(r)
}

// FeatureValue is one feature's answer for one entity: values per window
// ("10m", "1h", …), the version answering, and the time of the newest
// event included (to judge freshness). Building marks a feature whose
// first version is still being backfilled.
type FeatureValue struct {
	Version         int32                    `json:"version"`
	Building        bool                     `json:"building,omitempty"`
	Aggregation     string                   `json:"aggregation"`
	Values          map[string]FeatureResult `json:"values"`
	NewestEventTime *time.Time               `json:"newest_event_time"`
}

// EntityFeatures are the values of every feature of one entity, by
// feature name.
type EntityFeatures struct {
	EntityType      string                  `json:"entity_type"`
	EntityID        string                  `json:"entity_id"`
	NewestEventTime *time.Time              `json:"newest_event_time"`
	Features        map[string]FeatureValue `json:"features"`
}

// Features returns the current values of every feature of the entity.
func (c *Client) Features(ctx context.Context, e EntityRef) (*EntityFeatures, error) {
	if strings.Contains(e.ID, "/") || strings.Contains(e.Type, "/") {
		// The path form has one segment each; the batch form takes any id.
		out, err := c.ReadFeatures(ctx, []EntityRef{e})
		if err != nil {
			return nil, err
		}
		return &out[0], nil
	}
	if e.Type == "" || e.ID == "" {
		return nil, newError("invalid_request", -1, "an entity needs a type and an id")
	}
	var out EntityFeatures
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/features/" + seg(e.Type) + "/" + seg(e.ID), idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReadFeatures returns the values of up to MaxFeatureEntities entities in
// one round trip, in the order given.
func (c *Client) ReadFeatures(ctx context.Context, ents []EntityRef) ([]EntityFeatures, error) {
	if len(ents) == 0 || len(ents) > MaxFeatureEntities {
		return nil, newError("invalid_request", -1, "%d entities; want 1 to %d", len(ents), MaxFeatureEntities)
	}
	body := struct {
		Entities []EntityRef `json:"entities"`
	}{ents}
	var out struct {
		Results []EntityFeatures `json:"results"`
	}
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/features/read", body: body, idempotent: true}, &out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(ents) {
		return nil, fmt.Errorf("bulwark: features read: %d results for %d entities", len(out.Results), len(ents))
	}
	return out.Results, nil
}

// Evaluation is the answer of Evaluate: the values of every feature of
// every entity in the event, the event included.
type Evaluation struct {
	EventID  string           `json:"event_id"`
	Late     bool             `json:"late,omitempty"`
	Recorded bool             `json:"recorded"`
	Entities []EntityFeatures `json:"entities"`
}

// Evaluate is the synchronous check of a payment authorization: the
// current values of the features of every entity in ev, including ev
// itself (read your own write). With record, ev is also appended to the
// event log (counted once, even if also sent with SendEvents), so a retry
// is safe either way.
func (c *Client) Evaluate(ctx context.Context, ev Event, record bool) (*Evaluation, error) {
	if err := validateEvent(-1, &ev); err != nil {
		return nil, err
	}
	body := struct {
		Event  Event `json:"event"`
		Record bool  `json:"record"`
	}{ev, record}
	var out Evaluation
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/features/evaluate", body: body, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
