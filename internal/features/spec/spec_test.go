package spec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/problem"
)

const maxText = "340282366920938463463374607431768211455"

func codeOf(err error) string {
	var de *problem.DecodeError
	if errors.As(err, &de) {
		return de.Code
	}
	return ""
}

func pointerOf(err error) string {
	var de *problem.DecodeError
	if errors.As(err, &de) {
		return de.Pointer
	}
	return ""
}

func TestParseInt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		sign int
	}{
		{"0", true, 0}, {"42", true, 1}, {"-42", true, -1},
		{maxText, true, 1}, {"-" + maxText, true, -1},
		{"340282366920938463463374607431768211456", false, 0},
		{"-340282366920938463463374607431768211456", false, 0},
		{"-0", false, 0}, {"007", false, 0}, {"+1", false, 0}, {"1.5", false, 0}, {"1e3", false, 0}, {"", false, 0}, {"-", false, 0},
	} {
		i, err := ParseInt(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseInt(%q) err = %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (i.String() != tc.in || i.Sign() != tc.sign) {
			t.Errorf("ParseInt(%q) = %s sign %d", tc.in, i, i.Sign())
		}
	}
	if MinInt().Cmp(MaxInt()) != -1 || MaxInt().Cmp(MinInt()) != 1 || MinInt().Cmp(MinInt()) != 0 {
		t.Error("Cmp of the range ends")
	}
	a, b := IntFromInt64(-5), IntFromInt64(-7)
	if a.Cmp(b) != 1 || b.Cmp(a) != -1 || IntFromInt64(0) != (Int{}) {
		t.Error("Cmp of negatives or zero representation")
	}
	if IntFromInt64(-9223372036854775808).String() != "-9223372036854775808" {
		t.Error("MinInt64")
	}
}

func TestWindow(t *testing.T) {
	for _, tc := range []struct {
		in, canon string
	}{
		{"1m", "1m"}, {"10m", "10m"}, {"60m", "1h"}, {"1440m", "1d"}, {"90d", "90d"}, {"129600m", "90d"},
		{"2160h", "90d"}, {"25h", "25h"}, {"7d", "7d"},
	} {
		w, err := ParseWindow(tc.in)
		if err != nil || w.String() != tc.canon {
			t.Errorf("ParseWindow(%q) = %v, %v; want %s", tc.in, w, err, tc.canon)
		}
	}
	for _, bad := range []string{"", "0m", "91d", "2161h", "1s", "30s", "01m", "-1m", "1.5h", "m", "1", "1M", "99999999999999d", "1h30m"} {
		if _, err := ParseWindow(bad); codeOf(err) != problem.CodeWindowOutOfRange {
			t.Errorf("ParseWindow(%q) err = %v, want window_out_of_range", bad, err)
		}
	}
}

func TestFilterPrecedenceAndCanonical(t *testing.T) {
	ev := &Event{Fields: map[string]Value{
		"type": StringValue("payment"), "amount": IntValue(IntFromInt64(500)), "flag": BoolValue(true),
	}}
	for _, tc := range []struct {
		src, canon string
		match      bool
	}{
		{`type == "payment"`, `type == "payment"`, true},
		{`type=="payment"&&amount>100`, `type == "payment" && amount > 100`, true},
		{`a == 1 || type == "payment" && amount < 100`, `a == 1 || type == "payment" && amount < 100`, false},
		{`(a == 1 || type == "payment") && amount >= 500`, `(a == 1 || type == "payment") && amount >= 500`, true},
		{`!type == "x"`, `!type == "x"`, true},
		{`!(type == "x" || flag == true)`, `!(type == "x" || flag == true)`, false},
		{`a == 1 && (b == 2 && c == 3)`, `a == 1 && (b == 2 && c == 3)`, false},
		{`type in ["b", "payment", "a", "b"]`, `type in ["a", "b", "payment"]`, true},
		{`has(flag) && !has(missing)`, `has(flag) && !has(missing)`, true},
		{`missing != "x"`, `missing != "x"`, false},
		{`amount != "500"`, `amount != "500"`, false},
		{`amount <= ` + maxText, `amount <= ` + maxText, true},
		{`amount > -` + maxText, `amount > -` + maxText, true},
		{`type == "a\"b\\c"`, `type == "a\"b\\c"`, false},
		{"((((type == \"payment\"))))", `type == "payment"`, true},
	} {
		f, err := ParseFilter(tc.src)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", tc.src, err)
			continue
		}
		if f.String() != tc.canon {
			t.Errorf("ParseFilter(%q).String() = %q, want %q", tc.src, f.String(), tc.canon)
		}
		if got := f.Match(ev); got != tc.match {
			t.Errorf("%q Match = %v, want %v", tc.src, got, tc.match)
		}
		g, err := ParseFilter(f.String())
		if err != nil || !g.Equal(f) || g.Match(ev) != tc.match {
			t.Errorf("round trip of %q: %v", f, err)
		}
	}
	f, _ := ParseFilter(`b == 1 || a == 2 && has(b)`)
	if got := strings.Join(f.Fields(), ","); got != "a,b" {
		t.Errorf("Fields = %s", got)
	}
	var none *Filter
	if !none.Match(ev) || none.Fields() != nil || none.String() != "" {
		t.Error("nil filter")
	}
}

func TestFilterErrors(t *testing.T) {
	deep := strings.Repeat("(", MaxFilterDepth+1) + "a == 1" + strings.Repeat(")", MaxFilterDepth+1)
	many := "a == 1" + strings.Repeat(" || a == 1", MaxFilterNodes/2)
	long := `a == "` + strings.Repeat("x", MaxFilterBytes) + `"`
	for _, src := range []string{"", "a", "a ==", "== 1", "a == b", "a = 1", "a == 1 &&", "(a == 1", "a == 1)",
		`a == "x`, `a == "\n"`, `a == "\t"`, `a == "\u"`, "a < true", "in == 1", "has(in)", "has(a", "a in []", "a in [1,]",
		"a == 1.5", "a == 007", "a == -0", "A == 1", "a == 1 b == 2", deep, many, long, "a == 3402823669209384634633746074317682114560"} {
		if _, err := ParseFilter(src); codeOf(err) != problem.CodeInvalidFilter {
			t.Errorf("ParseFilter(%q) err = %v, want invalid_filter", src, err)
		}
	}
	ok := strings.Repeat("!", MaxFilterDepth-1) + "a == 1"
	if _, err := ParseFilter(ok); err != nil {
		t.Errorf("depth %d: %v", MaxFilterDepth, err)
	}
}

func TestDefinitionValidation(t *testing.T) {
	base := `"name":"card_count_10m","source":"events","entity":"card"`
	for _, tc := range []struct {
		body, code, pointer string
	}{
		{`{` + base + `,"aggregation":"count","windows":["10m"]}`, "", ""},
		{`{` + base + `,"aggregation":"sum","field":"amount","windows":["1h","10m"],"filter":"type==\"p\""}`, "", ""},
		{`{"name":"out","source":"ledger","entity":"account","aggregation":"sum","field":"amount","windows":["1h"],"filter":"side == \"debit\" && effect == \"posted\""}`, "", ""},
		{`{` + base + `,"aggregation":"median","field":"x","windows":["10m"]}`, problem.CodeUnknownAggregation, "/aggregation"},
		{`{` + base + `,"aggregation":"count","windows":["10m","91d"]}`, problem.CodeWindowOutOfRange, "/windows/1"},
		{`{` + base + `,"aggregation":"count","windows":["30s"]}`, problem.CodeWindowOutOfRange, "/windows/0"},
		{`{` + base + `,"aggregation":"count","windows":["10m"],"filter":"type =="}`, problem.CodeInvalidFilter, "/filter"},
		{`{"name":"x","source":"ledger","entity":"card","aggregation":"count","windows":["10m"]}`, problem.CodeUnknownField, "/entity"},
		{`{"name":"x","source":"ledger","entity":"account","aggregation":"max","field":"fee","windows":["10m"]}`, problem.CodeUnknownField, "/field"},
		{`{"name":"x","source":"ledger","entity":"account","aggregation":"count","windows":["10m"],"filter":"merchant == \"m\""}`, problem.CodeUnknownField, "/filter"},
		{`{"name":"x","source":"ledger","entity":"account","aggregation":"sum","field":"asset","windows":["10m"]}`, problem.CodeFieldTypeMismatch, "/field"},
		{`{"name":"x","source":"ledger","entity":"account","aggregation":"count","windows":["10m"],"filter":"amount > \"5\""}`, problem.CodeFieldTypeMismatch, "/filter"},
		{`{"name":"Bad","source":"events","entity":"card","aggregation":"count","windows":["10m"]}`, problem.CodeInvalidDefinition, "/name"},
		{`{` + base + `,"aggregation":"sum","windows":["10m"]}`, problem.CodeInvalidDefinition, "/field"},
		{`{` + base + `,"aggregation":"count","windows":[]}`, problem.CodeInvalidDefinition, "/windows"},
		{`{` + base + `,"aggregation":"count","windows":["1h","60m"]}`, problem.CodeInvalidDefinition, "/windows/1"},
		{`{` + base + `,"aggregation":"count","windows":["1m","2m","3m","4m","5m","6m","7m","8m","9m"]}`, problem.CodeInvalidDefinition, "/windows"},
		{`{"name":"x","source":"kafka","entity":"card","aggregation":"count","windows":["10m"]}`, problem.CodeInvalidDefinition, "/source"},
		{`{"name":"x","source":"events","entity":"Card","aggregation":"count","windows":["10m"]}`, problem.CodeUnknownField, "/entity"},
		{`{` + base + `,"aggregation":"count","windows":["10m"],"extra":1}`, problem.CodeUnknownMember, "/extra"},
	} {
		_, err := DecodeDefinition([]byte(tc.body))
		if codeOf(err) != tc.code || pointerOf(err) != tc.pointer || (tc.code == "") != (err == nil) {
			t.Errorf("DecodeDefinition(%s) = %v (pointer %q), want %q at %q", tc.body, err, pointerOf(err), tc.code, tc.pointer)
		}
		if err != nil && problem.Status(codeOf(err)) != 400 {
			t.Errorf("%s: status %d", codeOf(err), problem.Status(codeOf(err)))
		}
	}
}

func TestDefinitionCanonical(t *testing.T) {
	a, err := DecodeDefinition([]byte(`{"name":"f","source":"events","entity":"card","aggregation":"count","windows":["1h","10m"],"filter":"(type==\"p\")&&x in [2,1]"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeDefinition([]byte(`{"filter":"type == \"p\" && x in [1, 2, 2]","windows":["10m","60m"],"aggregation":"count","entity":"card","source":"events","name":"f"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Canonical()) != string(b.Canonical()) {
		t.Fatalf("canonical differ:\n%s\n%s", a.Canonical(), b.Canonical())
	}
	want := `{"name":"f","source":"events","entity":"card","aggregation":"count","windows":["10m","1h"],"filter":"type == \"p\" && x in [1, 2]"}`
	if string(a.Canonical()) != want {
		t.Errorf("Canonical = %s\nwant        %s", a.Canonical(), want)
	}
	c, err := DecodeDefinition(a.Canonical())
	if err != nil || string(c.Canonical()) != want {
		t.Errorf("canonical does not round-trip: %v", err)
	}
	c.Windows = append(c.Windows, MaxWindow)
	if string(c.Canonical()) == want {
		t.Error("a changed definition has the same canonical bytes")
	}
	f := a.CompiledFilter()
	if f == nil || f != a.CompiledFilter() || !f.Match(&Event{Fields: map[string]Value{"type": StringValue("p"), "x": IntValue(IntFromInt64(2))}}) {
		t.Error("CompiledFilter")
	}
	if (Definition{}).CompiledFilter() != nil || a.MaxWindow() != Window(time.Hour) {
		t.Error("no filter compiles to nil; MaxWindow")
	}
}

func TestDecodeEvents(t *testing.T) {
	one := `{"id":"e1","time":"2026-11-30T22:00:00.5+01:00","fields":{"card":"c1","amount":-` + maxText + `,"ok":true,"note":"a\"\n\u00e9<&>"}}`
	evs, err := DecodeEvents([]byte(one))
	if err != nil || len(evs) != 1 {
		t.Fatalf("DecodeEvents single: %v", err)
	}
	e := evs[0]
	if e.ID != "e1" || !e.Time.Equal(time.Date(2026, 11, 30, 21, 0, 0, 5e8, time.UTC)) || e.Time.Location() != time.UTC {
		t.Errorf("event %+v", e)
	}
	if v, ok := e.Get("amount"); !ok || v.Kind() != KindInt || v.Int() != MinInt() {
		t.Errorf("amount %v", v)
	}
	if _, ok := e.Get("id"); ok {
		t.Error("id is not a field")
	}
	b, _ := e.MarshalJSON()
	again, err := DecodeEvent(b)
	if err != nil {
		t.Fatalf("round trip %s: %v", b, err)
	}
	b2, _ := again.MarshalJSON()
	if string(b) != string(b2) || again.Time != e.Time || again.Fields["note"] != e.Fields["note"] {
		t.Errorf("round trip %s != %s", b, b2)
	}
	batch := `{"events":[` + one + `,{"id":"e2","time":"2026-11-30T22:00:00Z","fields":{"x":1.5}}]}`
	_, err = DecodeEvents([]byte(batch))
	if codeOf(err) != problem.CodeInvalidEvent || pointerOf(err) != "/events/1/fields/x" {
		t.Errorf("batch error %v at %q", err, pointerOf(err))
	}
	for _, tc := range []struct{ body, code, pointer string }{
		{`{"id":"","time":"2026-11-30T22:00:00Z","fields":{}}`, problem.CodeInvalidEvent, "/id"},
		{`{"id":"` + strings.Repeat("i", 201) + `","time":"2026-11-30T22:00:00Z","fields":{}}`, problem.CodeInvalidEvent, "/id"},
		{`{"id":"a","time":"yesterday","fields":{}}`, problem.CodeInvalidEvent, "/time"},
		{`{"id":"a","time":"2026-11-30T22:00:00Z"}`, problem.CodeInvalidEvent, "/fields"},
		{`{"id":"a","time":"2026-11-30T22:00:00Z","fields":{"x":null}}`, problem.CodeInvalidEvent, "/fields/x"},
		{`{"id":"a","time":"2026-11-30T22:00:00Z","fields":{"x":{"y":1}}}`, problem.CodeInvalidEvent, "/fields/x"},
		{`{"id":"a","time":"2026-11-30T22:00:00Z","fields":{"x":[1]}}`, problem.CodeInvalidEvent, "/fields/x"},
		{`{"id":"a","time":"2026-11-30T22:00:00Z","fields":{"x":1e3}}`, problem.CodeInvalidEvent, "/fields/x"},
		{`{"id":"a","time":"2026-11-30T22:00:00Z","fields":{"x":340282366920938463463374607431768211456}}`, problem.CodeInvalidEvent, "/fields/x"},
		{`{"id":"a","time":"2026-11-30T22:00:00Z","fields":{"x":-0}}`, problem.CodeInvalidEvent, "/fields/x"},
		{`{"id":"a","time":"2026-11-30T22:00:00Z","fields":{"X/y":1}}`, problem.CodeInvalidEvent, "/fields/X~1y"},
		{`{"id":"a","time":"2026-11-30T22:00:00Z","fields":{"s":"` + strings.Repeat("s", MaxStringBytes+1) + `"}}`, problem.CodeInvalidEvent, "/fields/s"},
		{`{"id":"a","time":"2026-11-30T22:00:00Z","fields":{},"x":1}`, problem.CodeUnknownMember, "/x"},
		{`{"id":"a","id":"b","time":"2026-11-30T22:00:00Z","fields":{}}`, problem.CodeDuplicateMember, ""},
		{`{"events":[]}`, problem.CodeInvalidEvent, "/events"},
		{`{"events":[],"id":"x"}`, problem.CodeUnknownMember, "/id"},
		{`[1]`, problem.CodeMalformedJSON, ""},
	} {
		_, err := DecodeEvents([]byte(tc.body))
		if codeOf(err) != tc.code || (tc.pointer != "" && pointerOf(err) != tc.pointer) {
			t.Errorf("DecodeEvents(%.80s) = %v at %q, want %s at %q", tc.body, err, pointerOf(err), tc.code, tc.pointer)
		}
	}
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	for i := 0; i <= MaxEventsPerBatch; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"id":"a","time":"2026-11-30T22:00:00Z","fields":{}}`)
	}
	sb.WriteString(`]}`)
	if _, err := DecodeEvents([]byte(sb.String())); codeOf(err) != problem.CodeInvalidEvent {
		t.Errorf("1001 events: %v", err)
	}
}

func TestLedgerEventID(t *testing.T) {
	tx := "0190f5b2-7c1e-7000-8000-000000000001"
	if LedgerEventID(tx, 3, "debit") != tx+":3:D" || LedgerEventID(tx, 3, "C") != tx+":3:C" {
		t.Error("LedgerEventID")
	}
}

func TestEventTimeRange(t *testing.T) {
	for _, tc := range []struct {
		time string
		ok   bool
	}{
		{"1970-01-01T00:00:00Z", true}, {"1969-12-31T23:59:59.999999999Z", false},
		{"2199-12-31T23:59:59.999999999Z", true}, {"2200-01-01T00:00:00Z", false}, {"9999-01-01T00:00:00Z", false},
	} {
		_, err := DecodeEvent([]byte(`{"id":"a","time":"` + tc.time + `","fields":{}}`))
		if (err == nil) != tc.ok || (err != nil && pointerOf(err) != "/time") {
			t.Errorf("time %s: %v, want ok %v", tc.time, err, tc.ok)
		}
	}
}

func TestIntJSON(t *testing.T) {
	for _, in := range []string{"0", "-" + maxText, `"` + maxText + `"`} {
		var i Int
		if err := i.UnmarshalJSON([]byte(in)); err != nil || string(must(i.MarshalJSON())) != strings.Trim(in, `"`) {
			t.Errorf("Int JSON %s: %v %s", in, err, i)
		}
	}
	var i Int
	if err := i.UnmarshalJSON([]byte("1.0")); !errors.Is(err, ErrIntSyntax) {
		t.Errorf("1.0: %v", err)
	}
	if err := i.UnmarshalJSON([]byte("340282366920938463463374607431768211456")); !errors.Is(err, ErrIntRange) {
		t.Errorf("2^128: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestLedgerEventMatchesLedgerDefinition(t *testing.T) {
	d, err := DecodeDefinition([]byte(`{"name":"out_1h","source":"ledger","entity":"account","aggregation":"sum","field":"amount","windows":["1h"],"filter":"side == \"debit\" && effect == \"posted\" && amount > 100"}`))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 30, 22, 0, 0, 0, time.FixedZone("x", 3600))
	e := LedgerEvent("tx-1", 0, "D", "posted", "acct/1", "USD", IntFromInt64(500).mag, at)
	if !d.CompiledFilter().Match(&e) || e.ID != "tx-1:0:D" || e.Time.Location() != time.UTC {
		t.Errorf("ledger event %+v", e)
	}
	for name, v := range e.Fields {
		if LedgerFields[name] != v.Kind() {
			t.Errorf("field %s is %s, LedgerFields says %s", name, v.Kind(), LedgerFields[name])
		}
	}
	if len(e.Fields) != len(LedgerFields) {
		t.Errorf("%d fields, LedgerFields has %d", len(e.Fields), len(LedgerFields))
	}
	credit := LedgerEvent("tx-1", 0, "C", "posted", "acct/2", "USD", IntFromInt64(500).mag, at)
	if d.CompiledFilter().Match(&credit) {
		t.Error("credit entry matched a debit filter")
	}
}
