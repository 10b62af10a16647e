// Package spec is the pure model of velocity features: feature
// definitions (Definition, Window), the events they count (Event, Value,
// Int) and the filter language (Filter). It does no I/O; every validation
// error is a *problem.DecodeError with a stable code and a JSON pointer,
// so an HTTP handler sends it as is (400 problem+json).
//
// # Definitions
//
// A definition aggregates one field of the events of a source (the
// tenant's events, or the ledger's entries: LedgerFields) per entity (the
// value of another field, Value.Key) over 1 to 8 windows of whole minutes
// from 1m to 90d, optionally restricted by a filter. count takes no field
// (every matching event) or one (the matching events that have it); sum
// and avg read integers; min and max read integers or strings; last and
// distinct_count read any value. DecodeDefinition returns definitions in
// canonical form and Canonical's bytes decide whether a change is a new
// version.
//
// # Filter language
//
// A filter selects the events a feature counts. Grammar (EBNF; whitespace
// between tokens is free):
//
//	filter     = or .
//	or         = and { "||" and } .
//	and        = unary { "&&" unary } .
//	unary      = "!" unary | "(" or ")" | "has" "(" field ")" | comparison .
//	comparison = field cmp literal | field "in" "[" literal { "," literal } "]" .
//	cmp        = "==" | "!=" | "<" | "<=" | ">" | ">=" .
//	literal    = string | integer | "true" | "false" .
//	field      = /[a-z_][a-z0-9_]{0,62}/ but not in, has, true, false .
//	string     = `"` { any UTF-8 character but `"`, `\` and controls | `\"` | `\\` } `"` .
//	integer    = /-?(0|[1-9][0-9]*)/ within ±(2^128-1), "-0" refused .
//
// ! binds tighter than &&, which binds tighter than ||; && and || are
// left-associative. Semantics: a comparison or an in list whose field is
// missing from the event, or holds a value of another kind than the
// literal, is false, and so is != (write !(f == "x") to include events
// without f). Integers compare exactly, strings bytewise, booleans with ==
// and != only. has(f) is true when the event has field f, whatever its
// value. Limits: MaxFilterBytes of source, MaxFilterNodes nodes,
// MaxFilterDepth levels. Filter.String is the canonical form (single
// spaces, minimal parentheses, in lists sorted and deduplicated); parsing
// it gives the same filter. docs/features-filter.md has examples.
//
// # Events
//
// An event has an id (counted once), a time and flat fields whose values
// are strings, exact integers (Int: magnitude up to 2^128-1, no floats) or
// booleans. DecodeEvents reads one event or {"events": [...]}.
package spec
