package spec

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/amount"
	"github.com/bulwark-ledger/bulwark/internal/problem"
)

// Sources of events.
const (
	// SourceEvents is the tenant's events (POST /v1/events): free-form
	// fields named ^[a-z_][a-z0-9_]{0,62}$.
	SourceEvents = "events"
	// SourceLedger is the ledger's entries, one event per entry row, with
	// the fields of LedgerFields.
	SourceLedger = "ledger"
)

// Aggregations.
const (
	AggCount         = "count"
	AggSum           = "sum"
	AggMin           = "min"
	AggMax           = "max"
	AggAvg           = "avg"
	AggDistinctCount = "distinct_count"
	AggLast          = "last"
)

// Aggregations lists every aggregation, in the order of the docs.
func Aggregations() []string {
	return []string{AggCount, AggSum, AggMin, AggMax, AggAvg, AggDistinctCount, AggLast}
}

// MaxWindows bounds a definition's windows (each one is a read of up to
// tile.MaxCover tiles).
const MaxWindows = 8

// LedgerFields are the fields of a ledger event, one per entry row of the
// relay's entries topic (table entries, internal/schema/migrations/00001_core.sql):
//
//	account      string  the entry's account id
//	asset        string  the account's asset
//	amount       integer the entry's amount, 0..2^128-1
//	side         string  "debit" or "credit" (column side 'D' / 'C')
//	effect       string  "posted", "hold" or "release"
//	transaction  string  the transaction's uuid
//
// A ledger event's ID is LedgerEventID(transaction, posting, side), unique
// per entry; its Time is the entry's created_at.
var LedgerFields = map[string]Kind{
	"account":     KindString,
	"asset":       KindString,
	"amount":      KindInt,
	"side":        KindString,
	"effect":      KindString,
	"transaction": KindString,
}

// LedgerEventID returns the event id of the ledger entry of posting
// (0-based index within the transaction) on side ("debit" or "credit", or
// the column's 'D' / 'C'), "<uuid>:<posting>:<D|C>": a transaction's
// posting has exactly one debit and one credit entry, so the id is unique
// per entry and the same on every replay of the change stream.
func LedgerEventID(transaction string, posting int, side string) string {
	s := "C"
	if side == "debit" || side == "D" {
		s = "D"
	}
	return transaction + ":" + strconv.Itoa(posting) + ":" + s
}

// LedgerEvent returns the event of one ledger entry (a row of table
// entries): side is the column's 'D' or 'C' (or "debit" / "credit"),
// posting the entry's posting index, createdAt its created_at.
func LedgerEvent(transaction string, posting int, side, effect, account, asset string, amt amount.Uint128, createdAt time.Time) Event {
	sideName := "credit"
	if side == "debit" || side == "D" {
		sideName = "debit"
	}
	return Event{
		ID:   LedgerEventID(transaction, posting, side),
		Time: createdAt.UTC(),
		Fields: map[string]Value{
			"account":     StringValue(account),
			"asset":       StringValue(asset),
			"amount":      IntValue(IntFromUint128(amt)),
			"side":        StringValue(sideName),
			"effect":      StringValue(effect),
			"transaction": StringValue(transaction),
		},
	}
}

// Definition is a tenant's feature definition as the API receives it.
type Definition struct {
	Name        string   `json:"name"`
	Source      string   `json:"source"`
	Entity      string   `json:"entity"`
	Aggregation string   `json:"aggregation"`
	Field       string   `json:"field,omitempty"`
	Windows     []Window `json:"windows"`
	Filter      string   `json:"filter,omitempty"`

	compiled *compiledFilter
}

// compiledFilter caches a definition's parsed filter. It is shared by the
// copies of a Definition (a pointer), and computed once.
type compiledFilter struct {
	once sync.Once
	src  string
	f    *Filter
}

// wireDefinition is the JSON shape, windows as text so that each one's
// error names its index.
type wireDefinition struct {
	Name        string   `json:"name"`
	Source      string   `json:"source"`
	Entity      string   `json:"entity"`
	Aggregation string   `json:"aggregation"`
	Field       string   `json:"field"`
	Windows     []string `json:"windows"`
	Filter      string   `json:"filter"`
}

// DecodeDefinition decodes body strictly (problem.Decode), validates it and
// returns it canonical: windows sorted ascending, the filter in its
// canonical form. Errors are *problem.DecodeError with a JSON pointer.
func DecodeDefinition(body []byte) (Definition, error) {
	var w wireDefinition
	if err := problem.Decode(body, &w); err != nil {
		return Definition{}, err
	}
	d := Definition{Name: w.Name, Source: w.Source, Entity: w.Entity, Aggregation: w.Aggregation,
		Field: w.Field, Filter: w.Filter}
	for i, s := range w.Windows {
		win, err := ParseWindow(s)
		if err != nil {
			return Definition{}, at(err, "/windows/"+strconv.Itoa(i))
		}
		d.Windows = append(d.Windows, win)
	}
	if err := d.Validate(); err != nil {
		return Definition{}, err
	}
	return d.canonical(), nil
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Validate checks d; the error is a *problem.DecodeError with the code and
// JSON pointer of the first rule d breaks.
func (d Definition) Validate() error {
	if !namePattern.MatchString(d.Name) {
		return invalid(codeInvalidDefinition, "/name", "name %s: want ^[a-z][a-z0-9_]{0,62}$", quoteShort(d.Name))
	}
	if d.Source != SourceEvents && d.Source != SourceLedger {
		return invalid(codeInvalidDefinition, "/source", "source %s: want events or ledger", quoteShort(d.Source))
	}
	if !slices.Contains(Aggregations(), d.Aggregation) {
		return invalid(codeUnknownAggregation, "/aggregation", "aggregation %s: want one of count, sum, min, max, avg, distinct_count, last", quoteShort(d.Aggregation))
	}
	if err := d.validateWindows(); err != nil {
		return err
	}
	if _, err := d.fieldKind(d.Entity, "/entity"); err != nil {
		return err
	}
	if err := d.validateField(); err != nil {
		return err
	}
	return d.validateFilter()
}

func (d Definition) validateWindows() error {
	if len(d.Windows) == 0 || len(d.Windows) > MaxWindows {
		return invalid(codeInvalidDefinition, "/windows", "%d windows: want 1 to %d", len(d.Windows), MaxWindows)
	}
	for i, w := range d.Windows {
		ptr := "/windows/" + strconv.Itoa(i)
		if w < MinWindow || w > MaxWindow || w%MinWindow != 0 {
			return invalid(codeWindowOutOfRange, ptr, "window %s: want whole minutes from 1m to 90d", w.Duration())
		}
		if slices.Contains(d.Windows[:i], w) {
			return invalid(codeInvalidDefinition, ptr, "window %s given twice", w)
		}
	}
	return nil
}

// validateField: count takes an optional field (it then counts the events
// that have it); every other aggregation needs one; sum and avg need an
// integer field (checked for the ledger, whose fields have types).
func (d Definition) validateField() error {
	if d.Field == "" {
		if d.Aggregation == AggCount {
			return nil
		}
		return invalid(codeInvalidDefinition, "/field", "aggregation %s needs a field", d.Aggregation)
	}
	k, err := d.fieldKind(d.Field, "/field")
	if err != nil {
		return err
	}
	numeric := d.Aggregation == AggSum || d.Aggregation == AggAvg
	if numeric && k != KindInt && k != KindNone {
		return invalid(codeFieldTypeMismatch, "/field", "%s of %s: a %s field; %s needs integers", d.Aggregation, d.Field, k, d.Aggregation)
	}
	if (d.Aggregation == AggMin || d.Aggregation == AggMax) && k == KindBool {
		return invalid(codeFieldTypeMismatch, "/field", "%s of %s: a boolean field", d.Aggregation, d.Field)
	}
	return nil
}

// fieldKind returns the kind of a field of d's source: the ledger's type,
// or KindNone (any) for tenant events.
func (d Definition) fieldKind(name, ptr string) (Kind, error) {
	if d.Source == SourceLedger {
		k, ok := LedgerFields[name]
		if !ok {
			return 0, invalid(codeUnknownField, ptr, "the ledger source has no field %s (it has account, asset, amount, side, effect, transaction)", quoteShort(name))
		}
		return k, nil
	}
	if !ValidFieldName(name) {
		return 0, invalid(codeUnknownField, ptr, "field %s: event field names match ^[a-z_][a-z0-9_]{0,62}$", quoteShort(name))
	}
	return KindNone, nil
}

func (d Definition) validateFilter() error {
	if d.Filter == "" {
		return nil
	}
	f, err := ParseFilter(d.Filter)
	if err != nil {
		return at(err, "/filter")
	}
	var bad error
	f.root.walk(func(n *node) {
		if bad != nil {
			return
		}
		k, err := d.fieldKind(n.field, "/filter")
		if err != nil {
			bad = err
			return
		}
		if k == KindNone || n.op == opHas {
			return
		}
		lits := n.list
		if n.op != opIn {
			lits = []Value{n.lit}
		}
		for _, l := range lits {
			if l.kind != k {
				bad = invalid(codeFieldTypeMismatch, "/filter", "filter compares %s, a %s field, with a %s", n.field, k, l.kind)
				return
			}
		}
	})
	return bad
}

// canonical returns d with windows sorted and the filter re-printed; d must
// be valid.
func (d Definition) canonical() Definition {
	c := d
	c.Windows = slices.Clone(d.Windows)
	slices.Sort(c.Windows)
	c.compiled = nil
	if d.Filter != "" {
		f, err := ParseFilter(d.Filter)
		if err == nil {
			c.Filter = f.String()
			c.compiled = &compiledFilter{src: c.Filter, f: f}
			c.compiled.once.Do(func() {})
		}
	}
	return c
}

// Canonical returns d as stable JSON: windows sorted, the filter canonical,
// members in a fixed order. Two valid definitions are semantically equal
// exactly when their Canonical bytes are equal (a changed definition is a
// new version).
func (d Definition) Canonical() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // filters hold && and <; keep them readable
	if err := enc.Encode(d.canonical()); err != nil {
		panic("spec: marshal definition: " + err.Error()) // strings and windows always marshal
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// CompiledFilter returns d's filter compiled, or nil when d has none (or
// when it does not parse, which Validate reports). It is parsed once per
// decoded definition.
func (d Definition) CompiledFilter() *Filter {
	if d.Filter == "" {
		return nil
	}
	if c := d.compiled; c != nil && c.src == d.Filter {
		c.once.Do(func() { c.f, _ = ParseFilter(c.src) })
		return c.f
	}
	f, _ := ParseFilter(d.Filter)
	return f
}

// MaxWindow returns d's longest window: how much history it needs.
func (d Definition) MaxWindow() Window {
	if len(d.Windows) == 0 {
		return 0
	}
	return slices.Max(d.Windows)
}
