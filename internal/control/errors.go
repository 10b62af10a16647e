package control

import "errors"

// Errors callers test with errors.Is. Each maps to one stable problem code
// in the HTTP API (see api.go); none of them leaves anything changed.
var (
	// ErrUnknownKey: the setting key is not in the registry.
	ErrUnknownKey = errors.New("control: unknown setting key")
	// ErrInvalidValue: the value does not parse as the key's type, or the
	// key's validator rejected it.
	ErrInvalidValue = errors.New("control: invalid setting value")
	// ErrOutOfRange: the value parses but lies outside [Min, Max].
	ErrOutOfRange = errors.New("control: setting value out of range")
	// ErrUnknownTenant: the tenant does not exist (and is not GlobalTenant).
	ErrUnknownTenant = errors.New("control: unknown tenant")
	// ErrUnknownPreset: no preset of that name is defined.
	ErrUnknownPreset = errors.New("control: unknown preset")
	// ErrPresetApplied: the preset is already applied to the tenant; revert
	// it first (re-applying would lose the values a revert must restore).
	ErrPresetApplied = errors.New("control: preset already applied")
	// ErrPresetNotApplied: revert of a preset that is not applied.
	ErrPresetNotApplied = errors.New("control: preset not applied")
	// ErrTooManyOverrides: the store holds MaxOverrides overrides already.
	ErrTooManyOverrides = errors.New("control: too many overrides")
	// ErrBadRequest: a malformed change (empty batch, duplicate key, bad assignment).
	ErrBadRequest = errors.New("control: bad request")
)
