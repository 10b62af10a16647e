package control

import (
	"fmt"
	"sort"
)

// Assignment is one key=value in text form.
type Assignment struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Preset is a named set of assignments applied and reverted as one change.
// Applying records the values it replaces (including "was unset"), and
// reverting restores exactly those, whatever happened to the keys meanwhile.
type Preset struct {
	Name   string       `json:"name"`
	Doc    string       `json:"doc"`
	Values []Assignment `json:"values"`
}

// DefinePreset adds a preset. Unknown keys, invalid values and duplicates
// are programmer errors and panic.
func (r *Registry) DefinePreset(p Preset) {
	if err := checkKeyName(p.Name); err != nil || len(p.Values) == 0 {
		panic(fmt.Sprintf("control: preset %q: bad name or no values", p.Name))
	}
	seen := make(map[string]bool, len(p.Values))
	for i, a := range p.Values {
		v, err := r.Parse(a.Key, a.Value)
		if err != nil || seen[a.Key] {
			panic(fmt.Sprintf("control: preset %q: %s: duplicate or invalid: %v", p.Name, a.Key, err))
		}
		seen[a.Key] = true
		p.Values[i].Value = v.String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.presets[p.Name]; dup {
		panic(fmt.Sprintf("control: preset %q defined twice", p.Name))
	}
	r.presets[p.Name] = &p
}

// Preset returns the preset named name.
func (r *Registry) Preset(name string) (Preset, error) {
	r.mu.RLock()
	p, ok := r.presets[name]
	r.mu.RUnlock()
	if !ok {
		return Preset{}, fmt.Errorf("%w: %q", ErrUnknownPreset, name)
	}
	return *p, nil
}

// Presets returns every preset sorted by name.
func (r *Registry) Presets() []Preset {
	r.mu.RLock()
	out := make([]Preset, 0, len(r.presets))
	for _, p := range r.presets {
		out = append(out, *p)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
