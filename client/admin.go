package client

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// The admin calls need the admin key (else ErrAdminKeyRequired).

var tenantIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Tenant is a tenant.
type Tenant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// KeyInput are the claims a new API key is entitled to (see the
// Bulwark-Source and Bulwark-Traffic headers); empty means none.
type KeyInput struct {
	Sources      []string `json:"sources,omitempty"`
	TrafficTypes []string `json:"traffic_types,omitempty"`
}

// APIKey is a created key; Key is the secret, shown once.
type APIKey struct {
	ID           string   `json:"id"`
	TenantID     string   `json:"tenant_id"`
	Key          string   `json:"key"`
	Sources      []string `json:"sources"`
	TrafficTypes []string `json:"traffic_types"`
}

// CreateTenant creates a tenant (ErrTenantExists if it does). Not retried
// after transport errors: a retry could answer ErrTenantExists for the
// tenant the first attempt created.
func (c *Client) CreateTenant(ctx context.Context, id, name string) (*Tenant, error) {
	if !tenantIDPattern.MatchString(id) {
		return nil, newError("invalid_tenant_id", -1, "tenant id %q does not match %s", id, tenantIDPattern)
	}
	var out Tenant
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/admin/tenants", body: Tenant{ID: id, Name: name}}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateKey creates an API key for tenant. Not retried after transport
// errors (a retry could create a second key).
func (c *Client) CreateKey(ctx context.Context, tenant string, in KeyInput) (*APIKey, error) {
	var out APIKey
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/admin/tenants/" + seg(tenant) + "/api-keys", body: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeKey revokes the key keyID (key_…, not the secret) of tenant; it
// stops authenticating within 5 seconds.
func (c *Client) RevokeKey(ctx context.Context, tenant, keyID string) error {
	_, err := c.do(ctx, &request{method: http.MethodDelete, path: "/v1/admin/tenants/" + seg(tenant) + "/api-keys/" + seg(keyID)}, nil)
	return err
}

// SettingKey is one key of the settings registry.
type SettingKey struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Default   string   `json:"default"`
	Min       *float64 `json:"min,omitempty"`
	Max       *float64 `json:"max,omitempty"`
	Doc       string   `json:"doc"`
	Validated bool     `json:"validated"`
}

// SettingKeys lists the setting keys, sorted by name.
func (c *Client) SettingKeys(ctx context.Context) ([]SettingKey, error) {
	var out struct {
		Keys []SettingKey `json:"keys"`
	}
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/admin/settings/keys", idempotent: true}, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// Setting is one key's effective value for a tenant and where it comes
// from: "tenant", "global" or "default".
type Setting struct {
	Key     string `json:"key"`
	Type    string `json:"type"`
	Value   string `json:"value"`
	Source  string `json:"source"`
	Default string `json:"default"`
}

// TenantSettings are a tenant's effective settings.
type TenantSettings struct {
	Tenant         string    `json:"tenant"`
	Version        int64     `json:"version"`
	Settings       []Setting `json:"settings"`
	PresetsApplied []string  `json:"presets_applied"`
}

// Settings reads tenant's effective settings ("*": the global scope).
func (c *Client) Settings(ctx context.Context, tenant string) (*TenantSettings, error) {
	var out TenantSettings
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/admin/settings/tenants/" + seg(tenant), idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SettingsPatch sets the keys of Set and removes the overrides of Unset,
// atomically. Values are JSON values of the key's type (numbers, bools,
// strings such as "250ms").
type SettingsPatch struct {
	Set      map[string]any `json:"set,omitempty"`
	Unset    []string       `json:"unset,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Operator string         `json:"operator,omitempty"`
}

// AuditEntry is one recorded change of one key.
type AuditEntry struct {
	ID       int64     `json:"id"`
	Version  int64     `json:"version"`
	Tenant   string    `json:"tenant"`
	Key      string    `json:"key"`
	OldValue *string   `json:"old_value"`
	NewValue *string   `json:"new_value"`
	Actor    string    `json:"actor"`
	Reason   string    `json:"reason"`
	Operator string    `json:"operator"`
	Preset   string    `json:"preset,omitempty"`
	At       time.Time `json:"at"`
}

// SettingsChange is the outcome of a change: the new version and the
// entries recorded (none when nothing changed).
type SettingsChange struct {
	Version int64        `json:"version"`
	Changes []AuditEntry `json:"changes"`
}

// ChangeSettings applies p to tenant ("*": global). Setting a key to the
// value it has changes nothing, so the call is safe to retry.
func (c *Client) ChangeSettings(ctx context.Context, tenant string, p SettingsPatch) (*SettingsChange, error) {
	var out SettingsChange
	if _, err := c.do(ctx, &request{method: http.MethodPatch, path: "/v1/admin/settings/tenants/" + seg(tenant), body: p, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// HistoryQuery filters the audit trail; zero fields mean no filter, Limit
// 0 means 100, Before 0 starts at the newest entry.
type HistoryQuery struct {
	Tenant, Key string
	Limit       int
	Before      int64
}

// SettingHistory returns audit entries, newest first. Pass the smallest ID
// of a page as Before for the next; an empty page is the end.
func (c *Client) SettingHistory(ctx context.Context, q HistoryQuery) ([]AuditEntry, error) {
	v := url.Values{}
	if q.Tenant != "" {
		v.Set("tenant", q.Tenant)
	}
	if q.Key != "" {
		v.Set("key", q.Key)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Before > 0 {
		v.Set("before", strconv.FormatInt(q.Before, 10))
	}
	var out struct {
		Entries []AuditEntry `json:"entries"`
	}
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/admin/settings/history", query: v, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return out.Entries, nil
}

// Preset is a named set of setting values.
type Preset struct {
	Name   string `json:"name"`
	Doc    string `json:"doc"`
	Values []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"values"`
}

// Presets lists the presets, sorted by name.
func (c *Client) Presets(ctx context.Context) ([]Preset, error) {
	var out struct {
		Presets []Preset `json:"presets"`
	}
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/admin/presets", idempotent: true}, &out); err != nil {
		return nil, err
	}
	return out.Presets, nil
}

// PresetRequest names the tenant ("*": global) a preset acts on.
type PresetRequest struct {
	Tenant   string `json:"tenant"`
	Reason   string `json:"reason,omitempty"`
	Operator string `json:"operator,omitempty"`
}

// ApplyPreset applies preset to r.Tenant (ErrPresetAlreadyApplied if it
// is). Not retried after transport errors.
func (c *Client) ApplyPreset(ctx context.Context, preset string, r PresetRequest) (*SettingsChange, error) {
	return c.presetAction(ctx, preset, "apply", r)
}

// RevertPreset restores what applying preset replaced (ErrPresetNotApplied
// if it is not applied).
func (c *Client) RevertPreset(ctx context.Context, preset string, r PresetRequest) (*SettingsChange, error) {
	return c.presetAction(ctx, preset, "revert", r)
}

func (c *Client) presetAction(ctx context.Context, preset, action string, r PresetRequest) (*SettingsChange, error) {
	var out SettingsChange
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/admin/presets/" + seg(preset) + "/" + action, body: r}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
