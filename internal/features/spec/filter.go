package spec

import (
	"slices"
	"strings"
)

// Limits of a filter, so that a hostile definition cannot make a filter
// that costs more than a few hundred nanoseconds per event: 64 nodes of at
// most a map lookup and a comparison each.
const (
	// MaxFilterBytes bounds a filter's source text.
	MaxFilterBytes = 1024
	// MaxFilterNodes bounds the nodes of its tree (each comparison, has,
	// !, && and || is one node, and each literal of an in list one more).
	MaxFilterNodes = 64
	// MaxFilterDepth bounds the nesting of operators and parentheses,
	// which bounds the parser's recursion: a chain a || b || c is one
	// level, each !, parenthesis or right-hand operand nested in another
	// operator one more. (Match's recursion is bounded by MaxFilterNodes.)
	MaxFilterDepth = 16
)

// op is a filter node's operation.
type op uint8

const (
	opEq op = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opIn
	opHas
	opNot
	opAnd
	opOr
)

var opText = [...]string{opEq: "==", opNe: "!=", opLt: "<", opLe: "<=", opGt: ">", opGe: ">=", opIn: "in", opAnd: "&&", opOr: "||"}

// node is one filter node. Comparisons, in and has name a field; !, &&
// and || have operands (one for !, two for the others).
type node struct {
	op    op
	field string
	lit   Value   // comparisons
	list  []Value // in: sorted by Compare, no duplicates
	x, y  *node
}

// Filter is a compiled filter expression (see the package doc for the
// language). A nil *Filter matches every event. A Filter is immutable and
// safe for concurrent use.
type Filter struct {
	root   *node
	fields []string
	text   string
}

// Match reports whether e satisfies f. It does not allocate.
func (f *Filter) Match(e *Event) bool {
	if f == nil {
		return true
	}
	return f.root.match(e)
}

func (n *node) match(e *Event) bool {
	switch n.op {
	case opAnd:
		return n.x.match(e) && n.y.match(e)
	case opOr:
		return n.x.match(e) || n.y.match(e)
	case opNot:
		return !n.x.match(e)
	case opHas:
		_, ok := e.Fields[n.field]
		return ok
	}
	v, ok := e.Fields[n.field]
	if !ok {
		return false // a missing field fails every comparison, != included
	}
	if n.op == opIn {
		for _, l := range n.list {
			if l == v {
				return true
			}
		}
		return false
	}
	if v.kind != n.lit.kind {
		return false // a type mismatch fails every comparison, != included
	}
	c := v.Compare(n.lit)
	switch n.op {
	case opEq:
		return c == 0
	case opNe:
		return c != 0
	case opLt:
		return c < 0
	case opLe:
		return c <= 0
	case opGt:
		return c > 0
	}
	return c >= 0 // opGe
}

// Fields returns the field names f reads, sorted, without duplicates
// (nil for a nil Filter).
func (f *Filter) Fields() []string {
	if f == nil {
		return nil
	}
	return slices.Clone(f.fields)
}

// String returns the canonical form of f: single spaces around binary
// operators, parentheses only where precedence needs them, in lists
// sorted without duplicates. ParseFilter(f.String()) is f again.
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	return f.text
}

// Equal reports whether f and g are the same tree (nil equals nil).
func (f *Filter) Equal(g *Filter) bool {
	if f == nil || g == nil {
		return f == g
	}
	return f.text == g.text
}

// precedence of a node when printed: || < && < ! < the rest.
func (n *node) precedence() int {
	switch n.op {
	case opOr:
		return 1
	case opAnd:
		return 2
	case opNot:
		return 3
	}
	return 4
}

func (n *node) print(b *strings.Builder) {
	switch n.op {
	case opAnd, opOr:
		p := n.precedence()
		printOperand(b, n.x, n.x.precedence() < p)
		b.WriteString(" " + opText[n.op] + " ")
		// The parser is left-associative: a right operand of the same
		// precedence was parenthesized in the source.
		printOperand(b, n.y, n.y.precedence() <= p)
	case opNot:
		b.WriteByte('!')
		printOperand(b, n.x, n.x.precedence() < n.precedence())
	case opHas:
		b.WriteString("has(" + n.field + ")")
	case opIn:
		b.WriteString(n.field + " in [")
		for i, v := range n.list {
			if i > 0 {
				b.WriteString(", ")
			}
			b.Write(v.AppendJSON(nil))
		}
		b.WriteByte(']')
	default:
		b.WriteString(n.field + " " + opText[n.op] + " ")
		b.Write(n.lit.AppendJSON(nil))
	}
}

func printOperand(b *strings.Builder, n *node, paren bool) {
	if paren {
		b.WriteByte('(')
	}
	n.print(b)
	if paren {
		b.WriteByte(')')
	}
}

// walk calls fn for every comparison, in and has node of the tree.
func (n *node) walk(fn func(*node)) {
	switch n.op {
	case opAnd, opOr:
		n.x.walk(fn)
		n.y.walk(fn)
	case opNot:
		n.x.walk(fn)
	default:
		fn(n)
	}
}
