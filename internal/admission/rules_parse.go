package admission

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseRules parses a rule table in either form below; input starting with
// '{' (after white space) is JSON, anything else is text. Any unknown key,
// malformed line or invalid value is an error that names its line or
// field, and no Rules is returned, so a caller that swaps only on success
// keeps the table it had.
//
// Text form, one statement a line, '#' starts a comment:
//
//	level critical 100     # level NAME MIN_WEIGHT, highest level first
//	level high 60
//	level normal 20
//	level low              # the lowest level has no min weight
//	route payments 100     # DIMENSION VALUE WEIGHT
//	route * 20             # "*": every route without a rule of its own
//	traffic crawler -50
//	source partner 15
//
// JSON form, the same statements:
//
//	{"levels": [{"name": "critical", "min_weight": 100}, {"name": "low"}],
//	 "rules":  [{"dimension": "route", "value": "payments", "weight": 100}]}
//
// Dimensions are tenant, route, source, client and traffic.
func ParseRules(data []byte) (*Rules, error) {
	if len(data) > MaxRulesBytes {
		return nil, fmt.Errorf("parse rules: %d bytes, more than the maximum %d", len(data), MaxRulesBytes)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	var (
		r   *Rules
		err error
	)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		r, err = parseRulesJSON(trimmed)
	} else {
		r, err = parseRulesText(data)
	}
	if err != nil {
		return nil, fmt.Errorf("parse rules: %w", err)
	}
	return r, nil
}

func parseRulesText(data []byte) (*Rules, error) {
	var (
		levels []Level
		rules  []Rule
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxRulesBytes)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "level" {
			l, err := parseLevelFields(f[1:])
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if len(rules) > 0 {
				return nil, fmt.Errorf("line %d: levels must come before rules", n)
			}
			levels = append(levels, l)
			continue
		}
		d, ok := parseDimension(f[0])
		if !ok {
			return nil, fmt.Errorf("line %d: unknown key %q (want level, tenant, route, source, client or traffic)", n, f[0])
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want %q, got %d fields", n, f[0]+" VALUE WEIGHT", len(f))
		}
		w, err := parseWeight(f[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if len(rules) == MaxRules {
			return nil, fmt.Errorf("line %d: more than the maximum %d rules", n, MaxRules)
		}
		rules = append(rules, Rule{Dimension: d, Value: f[1], Weight: w})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return compileRules(levels, rules)
}

func parseLevelFields(f []string) (Level, error) {
	switch len(f) {
	case 1:
		return Level{Name: f[0]}, nil
	case 2:
		w, err := parseWeight(f[1])
		if err != nil {
			return Level{}, fmt.Errorf("level %s: %w", f[0], err)
		}
		return Level{Name: f[0], MinWeight: w, HasMin: true}, nil
	}
	return Level{}, fmt.Errorf("want \"level NAME [MIN_WEIGHT]\", got %d fields", len(f)+1)
}

func parseWeight(s string) (int64, error) {
	w, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("weight %q: not an integer", s)
	}
	return w, nil
}

type jsonRules struct {
	Levels []jsonLevel `json:"levels"`
	Rules  []jsonRule  `json:"rules"`
}

type jsonLevel struct {
	Name      string `json:"name"`
	MinWeight *int64 `json:"min_weight"`
}

type jsonRule struct {
	Dimension string `json:"dimension"`
	Value     string `json:"value"`
	Weight    *int64 `json:"weight"`
}

func parseRulesJSON(data []byte) (*Rules, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in jsonRules
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("json: data after the rule table")
	}
	if len(in.Rules) > MaxRules {
		return nil, fmt.Errorf("%d rules, more than the maximum %d", len(in.Rules), MaxRules)
	}
	levels := make([]Level, len(in.Levels))
	for i, l := range in.Levels {
		levels[i] = Level{Name: l.Name}
		if l.MinWeight != nil {
			levels[i].MinWeight, levels[i].HasMin = *l.MinWeight, true
		}
	}
	rules := make([]Rule, len(in.Rules))
	for i, ru := range in.Rules {
		d, ok := parseDimension(ru.Dimension)
		if !ok {
			return nil, fmt.Errorf("rules[%d]: unknown dimension %q (want tenant, route, source, client or traffic)", i, ru.Dimension)
		}
		if ru.Weight == nil {
			return nil, fmt.Errorf("rules[%d]: missing weight", i)
		}
		rules[i] = Rule{Dimension: d, Value: ru.Value, Weight: *ru.Weight}
	}
	return compileRules(levels, rules)
}
