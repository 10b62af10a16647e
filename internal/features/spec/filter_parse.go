package spec

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// ParseFilter parses and checks a filter expression (see the package doc).
// "" is not a filter: a definition without one has Filter "" and a nil
// *Filter. Errors are *problem.DecodeError with code invalid_filter.
func ParseFilter(src string) (*Filter, error) {
	if len(src) > MaxFilterBytes {
		return nil, invalid(codeInvalidFilter, "", "filter of %d bytes: at most %d", len(src), MaxFilterBytes)
	}
	if !utf8.ValidString(src) || strings.IndexByte(src, 0) >= 0 {
		return nil, invalid(codeInvalidFilter, "", "filter is not valid UTF-8 text without U+0000")
	}
	p := &parser{src: src}
	p.next()
	root := p.or(1)
	if p.err == nil && p.tok.kind != tokEOF {
		p.fail("unexpected %s", p.tok.describe())
	}
	if p.err != nil {
		return nil, p.err
	}
	f := &Filter{root: root}
	root.walk(func(n *node) { f.fields = append(f.fields, n.field) })
	slices.Sort(f.fields)
	f.fields = slices.Compact(f.fields)
	var b strings.Builder
	root.print(&b)
	f.text = b.String()
	return f, nil
}

type parser struct {
	src   string
	lex   lexer
	tok   token
	nodes int
	err   error
}

func (p *parser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = invalid(codeInvalidFilter, "", "filter at byte %d: %s", p.tok.pos, fmt.Sprintf(format, args...))
	}
}

func (p *parser) next() {
	if p.err != nil {
		p.tok = token{kind: tokEOF, pos: len(p.src)}
		return
	}
	var err string
	p.tok, err = p.lex.scan(p.src)
	if err != "" {
		p.fail("%s", err)
		p.tok = token{kind: tokEOF, pos: len(p.src)}
	}
}

// newNode counts a node against MaxFilterNodes and checks depth.
func (p *parser) newNode(n *node, depth int) *node {
	p.nodes++
	if p.nodes > MaxFilterNodes {
		p.fail("more than %d nodes", MaxFilterNodes)
	}
	if depth > MaxFilterDepth {
		p.fail("nested deeper than %d", MaxFilterDepth)
	}
	return n
}

// or := and { "||" and }
func (p *parser) or(depth int) *node { return p.binary(depth, tokOr, opOr, p.and) }

// and := unary { "&&" unary }
func (p *parser) and(depth int) *node { return p.binary(depth, tokAnd, opAnd, p.unary) }

// binary parses operand { k operand }, left-associative.
func (p *parser) binary(depth int, k tokKind, o op, operand func(int) *node) *node {
	x := operand(depth)
	for p.err == nil && p.tok.kind == k {
		p.next()
		x = p.newNode(&node{op: o, x: x, y: operand(depth + 1)}, depth)
	}
	return x
}

// unary := "!" unary | "(" or ")" | "has" "(" ident ")" | comparison
func (p *parser) unary(depth int) *node {
	if depth > MaxFilterDepth {
		p.fail("nested deeper than %d", MaxFilterDepth)
		return nil
	}
	switch p.tok.kind {
	case tokNot:
		p.next()
		return p.newNode(&node{op: opNot, x: p.unary(depth + 1)}, depth)
	case tokLParen:
		p.next()
		x := p.or(depth + 1)
		p.expect(tokRParen)
		return x
	case tokIdent:
		if p.tok.text == "has" {
			return p.has(depth)
		}
		return p.comparison(depth)
	}
	p.fail("want a field, has(, ! or (, got %s", p.tok.describe())
	return nil
}

func (p *parser) expect(k tokKind) {
	if p.err == nil && p.tok.kind != k {
		p.fail("want %s, got %s", token{kind: k}.describe(), p.tok.describe())
	}
	p.next()
}

func (p *parser) has(depth int) *node {
	p.next()
	p.expect(tokLParen)
	name := p.field()
	p.expect(tokRParen)
	return p.newNode(&node{op: opHas, field: name}, depth)
}

func (p *parser) field() string {
	if p.err != nil {
		return ""
	}
	if p.tok.kind != tokIdent || reserved(p.tok.text) {
		p.fail("want a field name, got %s", p.tok.describe())
		return ""
	}
	name := p.tok.text
	p.next()
	return name
}

// comparison := ident cmp literal | ident "in" "[" literal { "," literal } "]"
func (p *parser) comparison(depth int) *node {
	name := p.field()
	if p.err != nil {
		return nil
	}
	if p.tok.kind == tokIdent && p.tok.text == "in" {
		p.next()
		return p.inList(name, depth)
	}
	if p.tok.kind != tokCmp {
		p.fail("want a comparison (==, !=, <, <=, >, >=) or in after %q, got %s", name, p.tok.describe())
		return nil
	}
	o := p.tok.op
	p.next()
	lit := p.literal()
	if p.err == nil && lit.kind == KindBool && o != opEq && o != opNe {
		p.fail("booleans compare with == and != only")
	}
	return p.newNode(&node{op: o, field: name, lit: lit}, depth)
}

func (p *parser) inList(name string, depth int) *node {
	n := p.newNode(&node{op: opIn, field: name}, depth)
	p.expect(tokLBracket)
	for p.err == nil {
		n.list = append(n.list, p.literal())
		p.newNode(n, depth) // each literal is a node
		if p.tok.kind != tokComma {
			break
		}
		p.next()
	}
	p.expect(tokRBracket)
	slices.SortFunc(n.list, Value.Compare)
	n.list = slices.Compact(n.list)
	return n
}

func (p *parser) literal() Value {
	if p.err != nil {
		return Value{}
	}
	t := p.tok
	switch {
	case t.kind == tokString:
		p.next()
		return StringValue(t.text)
	case t.kind == tokInt:
		i, err := ParseInt(t.text)
		if err != nil {
			p.fail("%v", err)
			return Value{}
		}
		p.next()
		return IntValue(i)
	case t.kind == tokIdent && (t.text == "true" || t.text == "false"):
		p.next()
		return BoolValue(t.text == "true")
	}
	p.fail("want a literal (\"string\", integer, true or false), got %s", t.describe())
	return Value{}
}

// reserved words cannot name fields in a filter.
func reserved(s string) bool {
	return s == "in" || s == "has" || s == "true" || s == "false"
}
