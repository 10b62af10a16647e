package admission

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Dimension is one axis of classification.
type Dimension uint8

const (
	DimTenant Dimension = iota
	DimRoute
	DimSource
	DimClient
	DimTraffic
	numDimensions
)

var dimensionNames = [numDimensions]string{"tenant", "route", "source", "client", "traffic"}

// String names the dimension as written in rule tables.
func (d Dimension) String() string {
	if d < numDimensions {
		return dimensionNames[d]
	}
	return "dimension(" + strconv.Itoa(int(d)) + ")"
}

func parseDimension(s string) (Dimension, bool) {
	for i, n := range dimensionNames {
		if n == s {
			return Dimension(i), true
		}
	}
	return 0, false
}

// Limits of a rule table. A table is pushed to every process and parsed on
// each change, so it is bounded like any other input.
const (
	MaxRulesBytes  = 4 << 20   // 4 MiB: ~100,000 lines of ~40 bytes
	MaxRules       = 100_000   // weight rules over all dimensions
	MaxValueBytes  = 128       // a dimension value, for example a tenant id
	MaxNameBytes   = 32        // a level name
	MaxWeight      = 1_000_000 // |weight| and |min_weight|; 5 dimensions sum to ≤ 5e6
	WildcardValue  = "*"       // the rule used when a value has no rule of its own
	rulesTextMagic = "# bulwark admission rules"
)

// Level is one priority level of a rule table.
type Level struct {
	Name string
	// MinWeight is the smallest weight sum that reaches this level. The
	// lowest level has none (HasMin false): it takes every other request.
	MinWeight int64
	HasMin    bool
}

// Rule maps one value of one dimension to a weight.
type Rule struct {
	Dimension Dimension
	Value     string // a value, or WildcardValue for every unlisted value
	Weight    int64
}

// Rules is a compiled, immutable rule table: the weight of a request is the
// sum over the five dimensions of the weight of its value (or of the
// dimension's "*" rule, or 0), and its priority is the highest level whose
// MinWeight the sum reaches. Build one with ParseRules; swap it into a
// running Controller with SetRules. Safe for concurrent use.
type Rules struct {
	levels []Level // highest first, as written
	rules  []Rule  // as written, for String
	dims   [numDimensions]dimTable
}

type dimTable struct {
	weights  map[string]int64
	wildcard int64
}

// DefaultRules has two levels, "critical" (weight ≥ 1) and "normal", and no
// weights, so every request is "normal" and may be shed. Operators raise
// traffic to "critical" with rules.
func DefaultRules() *Rules {
	r, err := compileRules([]Level{{Name: "critical", MinWeight: 1, HasMin: true}, {Name: "normal"}}, nil)
	if err != nil {
		panic("admission: default rules: " + err.Error())
	}
	return r
}

// Levels returns the number of priority levels (1..MaxLevels).
func (r *Rules) Levels() int { return len(r.levels) }

// Top returns the highest priority, the one overload control never sheds.
func (r *Rules) Top() Priority { return Priority(len(r.levels) - 1) }

// LevelName returns the name of priority p, or "" if p is out of range.
func (r *Rules) LevelName(p Priority) string {
	i := len(r.levels) - 1 - int(p)
	if i < 0 || i >= len(r.levels) {
		return ""
	}
	return r.levels[i].Name
}

// Weight returns the weight sum of req, after its claims are checked
// against its entitlements.
func (r *Rules) Weight(req *Request) int64 {
	w, _, _ := r.weight(req)
	return w
}

// Classify returns the priority of req. Claims of a source or traffic type
// that req.Entitled does not list are replaced by the entitlement defaults.
func (r *Rules) Classify(req *Request) Priority {
	p, _, _ := r.classify(req)
	return p
}

// classify also reports which claims were downgraded, for metrics.
func (r *Rules) classify(req *Request) (p Priority, srcDown, trafficDown bool) {
	w, srcDown, trafficDown := r.weight(req)
	return r.priority(w), srcDown, trafficDown
}

func (r *Rules) weight(req *Request) (w int64, srcDown, trafficDown bool) {
	src, srcDown := req.Entitled.source(req.Source)
	traffic, trafficDown := req.Entitled.traffic(req.Traffic)
	w = r.dims[DimTenant].lookup(req.Tenant) +
		r.dims[DimRoute].lookup(req.Route) +
		r.dims[DimSource].lookup(src) +
		r.dims[DimClient].lookup(req.Client) +
		r.dims[DimTraffic].lookup(traffic)
	return w, srcDown, trafficDown
}

func (t *dimTable) lookup(v string) int64 {
	if w, ok := t.weights[v]; ok {
		return w
	}
	return t.wildcard
}

func (r *Rules) priority(w int64) Priority {
	n := len(r.levels)
	for i := 0; i < n-1; i++ {
		if w >= r.levels[i].MinWeight {
			return Priority(n - 1 - i)
		}
	}
	return 0
}

// compileRules validates levels and rules and builds the lookup tables. It
// is the single gate both input formats pass through.
func compileRules(levels []Level, rules []Rule) (*Rules, error) {
	if err := checkLevels(levels); err != nil {
		return nil, err
	}
	if len(rules) > MaxRules {
		return nil, fmt.Errorf("%d rules, more than the maximum %d", len(rules), MaxRules)
	}
	r := &Rules{levels: append([]Level(nil), levels...), rules: append([]Rule(nil), rules...)}
	for i := range r.dims {
		r.dims[i].weights = make(map[string]int64)
	}
	seenWildcard := [numDimensions]bool{}
	for i, ru := range rules {
		if err := checkRule(ru); err != nil {
			return nil, fmt.Errorf("rule %d (%s %s): %w", i+1, ru.Dimension, ru.Value, err)
		}
		t := &r.dims[ru.Dimension]
		if ru.Value == WildcardValue {
			if seenWildcard[ru.Dimension] {
				return nil, fmt.Errorf("rule %d: duplicate rule for %s %s", i+1, ru.Dimension, ru.Value)
			}
			seenWildcard[ru.Dimension] = true
			t.wildcard = ru.Weight
			continue
		}
		if _, dup := t.weights[ru.Value]; dup {
			return nil, fmt.Errorf("rule %d: duplicate rule for %s %s", i+1, ru.Dimension, ru.Value)
		}
		t.weights[ru.Value] = ru.Weight
	}
	return r, nil
}

func checkLevels(levels []Level) error {
	if len(levels) == 0 {
		return fmt.Errorf("no levels: at least one is required")
	}
	if len(levels) > MaxLevels {
		return fmt.Errorf("%d levels, more than the maximum %d", len(levels), MaxLevels)
	}
	seen := make(map[string]bool, len(levels))
	for i, l := range levels {
		if err := checkName(l.Name); err != nil {
			return fmt.Errorf("level %d: %w", i+1, err)
		}
		if seen[l.Name] {
			return fmt.Errorf("level %d: duplicate level name %q", i+1, l.Name)
		}
		seen[l.Name] = true
		last := i == len(levels)-1
		switch {
		case last && l.HasMin:
			return fmt.Errorf("level %q: the lowest level takes every remaining weight and must not have a min weight", l.Name)
		case !last && !l.HasMin:
			return fmt.Errorf("level %q: only the lowest (last) level may omit its min weight", l.Name)
		case !last && (l.MinWeight > 5*MaxWeight || l.MinWeight < -5*MaxWeight):
			return fmt.Errorf("level %q: min weight %d outside ±%d", l.Name, l.MinWeight, 5*MaxWeight)
		case i > 0 && !last && l.MinWeight >= levels[i-1].MinWeight:
			return fmt.Errorf("level %q: min weight %d must be below %d of the level above (list levels highest first)",
				l.Name, l.MinWeight, levels[i-1].MinWeight)
		}
	}
	return nil
}

func checkRule(ru Rule) error {
	if ru.Dimension >= numDimensions {
		return fmt.Errorf("unknown dimension %d", ru.Dimension)
	}
	if err := checkValue(ru.Value); err != nil {
		return err
	}
	if ru.Weight > MaxWeight || ru.Weight < -MaxWeight {
		return fmt.Errorf("weight %d outside ±%d", ru.Weight, MaxWeight)
	}
	return nil
}

// checkName allows [a-z0-9_-]{1,MaxNameBytes}: level names become metric
// documentation and problem members.
func checkName(s string) error {
	if s == "" || len(s) > MaxNameBytes {
		return fmt.Errorf("level name %q: want 1 to %d characters", s, MaxNameBytes)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("level name %q: want only a-z, 0-9, '_' and '-'", s)
		}
	}
	return nil
}

// checkValue allows printable ASCII without space and '#', so that every
// value survives the text form unchanged.
func checkValue(s string) error {
	if s == "" || len(s) > MaxValueBytes {
		return fmt.Errorf("value %q: want 1 to %d bytes", s, MaxValueBytes)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '#' {
			return fmt.Errorf("value %q: byte %#x not allowed (printable ASCII without space and '#')", s, c)
		}
	}
	return nil
}

// String returns the table in the canonical text form accepted by
// ParseRules: levels highest first, then rules sorted by dimension and value.
func (r *Rules) String() string {
	var b strings.Builder
	b.WriteString(rulesTextMagic + " v1\n")
	for _, l := range r.levels {
		b.WriteString("level " + l.Name)
		if l.HasMin {
			b.WriteString(" " + strconv.FormatInt(l.MinWeight, 10))
		}
		b.WriteByte('\n')
	}
	rules := append([]Rule(nil), r.rules...)
	sort.Slice(rules, func(i, j int) bool {
		if rules[i].Dimension != rules[j].Dimension {
			return rules[i].Dimension < rules[j].Dimension
		}
		return rules[i].Value < rules[j].Value
	})
	for _, ru := range rules {
		fmt.Fprintf(&b, "%s %s %d\n", ru.Dimension, ru.Value, ru.Weight)
	}
	return b.String()
}
