// Package promql reads the metric names out of a PromQL expression, so a
// test can check that every dashboard panel and every rule of deploy/
// refers to a metric the server exports. It is a tokenizer, not a parser:
// it knows PromQL's functions-by-position (an identifier followed by "("),
// its keywords and aggregation modifiers, label matchers, range and
// subquery brackets, strings, numbers and durations, and Grafana's
// template variables ($var, ${var}, [[var]]). Syntax is checked by promtool
// (rules) and Grafana; this package only has to find every name, and to
// refuse what it does not understand rather than miss one.
package promql

import (
	"errors"
	"fmt"
	"strings"
)

// keywords are identifiers that are never metric names: binary and set
// operators, modifiers, and the special float values.
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true,
	"offset": true, "start": true, "end": true, "inf": true, "nan": true,
}

// labelListKeywords take a parenthesized list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true,
}

// MaxExprBytes bounds the input: a panel or rule longer than 64 KiB is a
// mistake, and the tokenizer is linear anyway.
const MaxExprBytes = 64 << 10

// ErrSyntax reports an expression the tokenizer cannot read.
var ErrSyntax = errors.New("promql: syntax")

// MetricNames returns the metric names expr refers to, in order of first
// appearance, without duplicates. A selector written {__name__="x"} counts
// as x; a regex name matcher is refused (it cannot be checked).
func MetricNames(expr string) ([]string, error) {
	if len(expr) > MaxExprBytes {
		return nil, fmt.Errorf("%w: expression of %d bytes > %d", ErrSyntax, len(expr), MaxExprBytes)
	}
	t := tokenizer{s: expr, seen: map[string]bool{}}
	if err := t.run(); err != nil {
		return nil, err
	}
	return t.names, nil
}

type tokenizer struct {
	s     string
	i     int
	names []string
	seen  map[string]bool
}

func (t *tokenizer) add(name string) {
	if !t.seen[name] {
		t.seen[name] = true
		t.names = append(t.names, name)
	}
}

func (t *tokenizer) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrSyntax, t.i, fmt.Sprintf(format, args...))
}

func (t *tokenizer) run() error {
	depth := 0
	for t.i < len(t.s) {
		c := t.s[t.i]
		var err error
		switch {
		case isSpace(c):
			t.i++
		case c == '#':
			t.skipComment()
		case c == '"' || c == '\'' || c == '`':
			_, err = t.str()
		case c == '$':
			err = t.variable()
		case c == '[':
			err = t.bracket()
		case c == '{':
			err = t.matchers()
		case c == '(':
			depth++
			t.i++
		case c == ')':
			if depth--; depth < 0 {
				return t.errorf("unbalanced )")
			}
			t.i++
		case isDigit(c) || c == '.' && t.i+1 < len(t.s) && isDigit(t.s[t.i+1]):
			t.number()
		case isIdentStart(c):
			err = t.identifier()
		case strings.IndexByte("+-*/%^=!<>,@", c) >= 0:
			t.i++
		default:
			return t.errorf("unexpected %q", c)
		}
		if err != nil {
			return err
		}
	}
	if depth != 0 {
		return t.errorf("unbalanced (")
	}
	return nil
}

func (t *tokenizer) skipComment() {
	for t.i < len(t.s) && t.s[t.i] != '\n' {
		t.i++
	}
}

// str reads a quoted string and returns its contents (escapes kept as
// written: names are compared, not unescaped).
func (t *tokenizer) str() (string, error) {
	q := t.s[t.i]
	start := t.i + 1
	for j := start; j < len(t.s); j++ {
		switch t.s[j] {
		case '\\':
			if q != '`' {
				j++
			}
		case q:
			t.i = j + 1
			return t.s[start:j], nil
		}
	}
	return "", t.errorf("unterminated string")
}

// variable skips a Grafana template variable: $name, ${name...}.
func (t *tokenizer) variable() error {
	t.i++
	if t.i < len(t.s) && t.s[t.i] == '{' {
		end := strings.IndexByte(t.s[t.i:], '}')
		if end < 0 {
			return t.errorf("unterminated ${")
		}
		t.i += end + 1
		return nil
	}
	start := t.i
	for t.i < len(t.s) && isIdentPart(t.s[t.i]) {
		t.i++
	}
	if t.i == start {
		return t.errorf("$ without a variable name")
	}
	return nil
}

// bracket skips a range or subquery [5m], [$__rate_interval], [1h:5m], or
// a Grafana [[var]].
func (t *tokenizer) bracket() error {
	end := strings.IndexByte(t.s[t.i:], ']')
	if end < 0 {
		return t.errorf("unterminated [")
	}
	inner := t.s[t.i+1 : t.i+end]
	if strings.HasPrefix(inner, "[") { // [[var]]
		end++
		if t.i+end >= len(t.s) || t.s[t.i+end] != ']' {
			return t.errorf("unterminated [[")
		}
	} else if strings.ContainsAny(inner, "([{\"'`") {
		return t.errorf("unexpected token in range %q", inner)
	}
	t.i += end + 1
	return nil
}

// matchers reads a label matcher list {a="x", b=~"y"}; a __name__
// equality matcher names a metric.
func (t *tokenizer) matchers() error {
	t.i++ // {
	for {
		t.skipSpace()
		if t.i >= len(t.s) {
			return t.errorf("unterminated {")
		}
		switch c := t.s[t.i]; {
		case c == '}':
			t.i++
			return nil
		case c == ',':
			t.i++
			continue
		case c == '"': // a quoted metric name: {"metric", a="x"}
			name, err := t.str()
			if err != nil {
				return err
			}
			if name == "" {
				return t.errorf("empty metric name")
			}
			t.add(name)
			continue
		case !isIdentStart(c):
			return t.errorf("unexpected %q in label matchers", c)
		}
		label := t.ident()
		t.skipSpace()
		op := t.matchOp()
		if op == "" {
			return t.errorf("label %s without a match operator", label)
		}
		t.skipSpace()
		if t.i >= len(t.s) || strings.IndexByte("\"'`", t.s[t.i]) < 0 {
			if t.i < len(t.s) && t.s[t.i] == '$' { // Grafana: route=~"$route" is usual, $route bare is not PromQL
				return t.errorf("label %s: unquoted variable", label)
			}
			return t.errorf("label %s: value is not a string", label)
		}
		val, err := t.str()
		if err != nil {
			return err
		}
		if label == "__name__" {
			if op != "=" || val == "" {
				return t.errorf("__name__%s%q cannot be checked", op, val)
			}
			t.add(val)
		}
	}
}

func (t *tokenizer) matchOp() string {
	for _, op := range []string{"=~", "!~", "!=", "="} {
		if strings.HasPrefix(t.s[t.i:], op) {
			t.i += len(op)
			return op
		}
	}
	return ""
}

// number skips a number or duration: 0.99, 1e3, 0x1f, 5m, 1h30m.
func (t *tokenizer) number() {
	for t.i < len(t.s) && (isIdentPart(t.s[t.i]) || t.s[t.i] == '.') {
		if (t.s[t.i] == 'e' || t.s[t.i] == 'E') && t.i+1 < len(t.s) && (t.s[t.i+1] == '+' || t.s[t.i+1] == '-') {
			t.i++
		}
		t.i++
	}
}

// identifier classifies a name: a keyword, a label list modifier (whose
// list is skipped), a function or aggregation (followed by "(" or by a
// modifier), or a metric.
func (t *tokenizer) identifier() error {
	name := t.ident()
	lower := strings.ToLower(name)
	if keywords[lower] {
		return nil
	}
	t.skipSpace()
	if labelListKeywords[lower] {
		if t.i < len(t.s) && t.s[t.i] == '(' {
			return t.skipLabelList()
		}
		return nil // group_left without a list
	}
	if t.i < len(t.s) && t.s[t.i] == '(' {
		return nil // a function or an aggregation: its "(" is read next
	}
	if next := t.peekIdent(); labelListKeywords[strings.ToLower(next)] && isAggregation(lower) {
		return nil // sum by (x) (…)
	}
	t.add(name)
	return nil
}

func (t *tokenizer) skipLabelList() error {
	end := strings.IndexByte(t.s[t.i:], ')')
	if end < 0 {
		return t.errorf("unterminated label list")
	}
	for _, l := range strings.Split(t.s[t.i+1:t.i+end], ",") {
		l = strings.TrimSpace(l)
		if l != "" && !isIdent(l) {
			return t.errorf("bad label %q in list", l)
		}
	}
	t.i += end + 1
	return nil
}

func (t *tokenizer) ident() string {
	start := t.i
	for t.i < len(t.s) && isIdentPart(t.s[t.i]) {
		t.i++
	}
	return t.s[start:t.i]
}

func (t *tokenizer) peekIdent() string {
	j := t.i
	for j < len(t.s) && isIdentPart(t.s[j]) {
		j++
	}
	return t.s[t.i:j]
}

func (t *tokenizer) skipSpace() {
	for t.i < len(t.s) && isSpace(t.s[t.i]) {
		t.i++
	}
}

func isAggregation(s string) bool {
	switch s {
	case "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
		"bottomk", "topk", "quantile", "limitk", "limit_ratio":
		return true
	}
	return false
}

func isIdent(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentPart(s[i]) {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool      { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || c|0x20 >= 'a' && c|0x20 <= 'z' }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) }
