package control

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Key describes one setting: its type, default, bounds, validator and doc.
type Key struct {
	// Name is dot-separated lower case: "tasks.recompute.rate_per_partition".
	Name string
	Type Type
	// Default is the value, in text form, that applies when neither the
	// tenant nor the global scope overrides the key. It must itself be valid.
	Default string
	// Min and Max bound Int, Float and Duration (in seconds) values
	// inclusively. Both zero means unbounded.
	Min, Max float64
	// Doc says what the key controls, its unit and what zero means.
	Doc string
	// Validate, when set, checks a value's canonical text after type and
	// range checks (for example the admission rule-table parser). It can
	// also be installed later with SetValidator.
	Validate func(string) error
}

type keyDef struct {
	Key
	index    int
	def      Value
	validate atomic.Pointer[func(string) error]
}

// Registry is the set of known settings and presets. Keys and presets are
// defined at start-up, before the first Snapshot is built; Define panics
// after that, since a snapshot's layout is fixed by the registry. Validators
// may be swapped at any time. A Registry is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	frozen  bool
	keys    []*keyDef
	byName  map[string]*keyDef
	presets map[string]*Preset
}

// NewRegistry returns a registry holding Bulwark's built-in keys and presets
// (see builtin.go).
func NewRegistry() *Registry {
	r := NewEmptyRegistry()
	for _, k := range builtinKeys() {
		r.Define(k)
	}
	for _, p := range builtinPresets() {
		r.DefinePreset(p)
	}
	return r
}

// NewEmptyRegistry returns a registry with no keys.
func NewEmptyRegistry() *Registry {
	return &Registry{byName: make(map[string]*keyDef), presets: make(map[string]*Preset)}
}

// Define adds a key. A malformed key, a duplicate or an invalid default is a
// programmer error and panics, as does Define after the registry is frozen.
func (r *Registry) Define(k Key) {
	if err := checkKeyName(k.Name); err != nil {
		panic(fmt.Sprintf("control: define %q: %v", k.Name, err))
	}
	if k.Doc == "" {
		panic(fmt.Sprintf("control: define %q: every key needs a Doc", k.Name))
	}
	d := &keyDef{Key: k}
	if k.Validate != nil {
		d.validate.Store(&k.Validate)
	}
	def, err := d.parse(k.Default)
	if err != nil {
		panic(fmt.Sprintf("control: define %q: default: %v", k.Name, err))
	}
	d.def = def
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frozen {
		panic(fmt.Sprintf("control: define %q after the registry was frozen", k.Name))
	}
	if _, dup := r.byName[k.Name]; dup {
		panic(fmt.Sprintf("control: key %q defined twice", k.Name))
	}
	d.index = len(r.keys)
	r.keys = append(r.keys, d)
	r.byName[k.Name] = d
}

// SetValidator installs (or, with nil, removes) the validator of a key.
// Values already stored are not re-checked; a stored value that a newer
// validator rejects is ignored by watchers (the default applies) and counted.
func (r *Registry) SetValidator(name string, fn func(string) error) error {
	d, err := r.lookup(name)
	if err != nil {
		return err
	}
	if fn == nil {
		d.validate.Store(nil)
	} else {
		d.validate.Store(&fn)
	}
	return nil
}

// Parse checks text against key name: known key, type, range, validator.
// It returns the typed value, whose String() is the canonical stored form.
func (r *Registry) Parse(name, text string) (Value, error) {
	d, err := r.lookup(name)
	if err != nil {
		return Value{}, err
	}
	v, err := d.parse(text)
	if err != nil {
		return Value{}, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// Keys returns the keys in definition order.
func (r *Registry) Keys() []Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Key, len(r.keys))
	for i, d := range r.keys {
		out[i] = d.Key
		if p := d.validate.Load(); p != nil {
			out[i].Validate = *p
		}
	}
	return out
}

// Lookup returns the key named name.
func (r *Registry) Lookup(name string) (Key, bool) {
	d, err := r.lookup(name)
	if err != nil {
		return Key{}, false
	}
	return d.Key, true
}

func (r *Registry) lookup(name string) (*keyDef, error) {
	r.mu.RLock()
	d, ok := r.byName[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q (bulwark control keys lists them)", ErrUnknownKey, name)
	}
	return d, nil
}

// freeze stops further Define calls and returns the key table.
func (r *Registry) freeze() []*keyDef {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = true
	return slices.Clip(r.keys)
}

func (d *keyDef) parse(text string) (Value, error) {
	v, err := ParseValue(d.Type, text)
	if err != nil {
		return Value{}, err
	}
	if n, ok := v.number(); ok && (d.Min != 0 || d.Max != 0) && (n < d.Min || n > d.Max) {
		return Value{}, fmt.Errorf("%w: %s is outside [%g, %g]", ErrOutOfRange, v, d.Min, d.Max)
	}
	if p := d.validate.Load(); p != nil {
		if err := (*p)(v.String()); err != nil {
			return Value{}, fmt.Errorf("%w: %w", ErrInvalidValue, err)
		}
	}
	return v, nil
}
