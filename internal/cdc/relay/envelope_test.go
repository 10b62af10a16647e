package relay

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bulwark-ledger/bulwark/internal/cdc/pgoutput"
)

// FuzzEnvelope builds rows from arbitrary column names and text values of
// several types: every accepted row must encode to a JSON object that
// decodes back to the same columns, and the whole event must round-trip.
func FuzzEnvelope(f *testing.F) {
	f.Add("id", "1", "name", "x\"y\\z\u2028", uint8(0))
	f.Add("a", "{\"k\":[1,2]}", "", "", uint8(3))
	f.Add("n", "NaN", "t", "\xff\xfe", uint8(1))
	f.Add("j", "{ \"a\" : \"x y\\\" z\" ,\"b\":[ 1 , 2 ] }", "c\u2029", "<&>\x01\t", uint8(3))
	f.Add("k", "\\xdeadbeef", "ctl\x1f", "\u2028", uint8(4))
	oids := []uint32{pgoutput.OIDInt8, pgoutput.OIDNumeric, pgoutput.OIDText, pgoutput.OIDJSONB, pgoutput.OIDBytea, pgoutput.OIDTimestamptz}
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string, kind uint8) {
		oid := oids[int(kind)%len(oids)]
		var fields []pgoutput.Field
		for _, c := range [][2]string{{n1, v1}, {n2, v2}} {
			v, err := pgoutput.Value(oid, []byte(c[1]), nil)
			if err != nil {
				return
			}
			fields = append(fields, pgoutput.Field{Name: c[0], Value: v})
		}
		row, err := rowJSON(fields)
		if err != nil {
			return
		}
		if !json.Valid(row) {
			t.Fatalf("invalid JSON %q", row)
		}
		// Reference: the same object through encoding/json.
		ref := []byte{'{'}
		for i, fl := range fields {
			if i > 0 {
				ref = append(ref, ',')
			}
			k, _ := json.Marshal(fl.Name)
			v, _ := json.Marshal(fl.Value)
			ref = append(append(append(ref, k...), ':'), v...)
		}
		ref = append(ref, '}')
		var got, want any
		_ = json.Unmarshal(row, &got)
		_ = json.Unmarshal(ref, &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("rowJSON %s, encoding/json %s", row, ref)
		}
		var back map[string]json.RawMessage
		if err := json.Unmarshal(row, &back); err != nil {
			t.Fatal(err)
		}
		if n1 != n2 && utf8.ValidString(n1) && utf8.ValidString(n2) && len(back) != 2 {
			t.Fatalf("%d columns decoded from %s", len(back), row)
		}
		ev := Event{ID: EventID(pgoutput.LSN(len(v1)), int64(kind)), Op: OpUpdate, Before: row, After: row,
			Source: Source{Schema: n1, Table: n2, CommitTime: time.Unix(0, 0).UTC()}}
		b := appendEvent(nil, &ev)
		std, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var a1, a2 any
		if err := json.Unmarshal(b, &a1); err != nil {
			t.Fatalf("hand-encoded event is not JSON: %v\n%s", err, b)
		}
		_ = json.Unmarshal(std, &a2)
		if !reflect.DeepEqual(a1, a2) {
			t.Fatalf("hand-encoded event differs:\n%s\n%s", b, std)
		}
		var ev2 Event
		if err := json.Unmarshal(b, &ev2); err != nil {
			t.Fatalf("event does not decode: %v\n%s", err, b)
		}
		// Names from PostgreSQL are valid UTF-8 (the encoding must be UTF8);
		// encoding/json replaces invalid bytes.
		if ev2.ID != ev.ID || (utf8.ValidString(n2) && ev2.Source.Table != n2) {
			t.Fatalf("round trip: %+v", ev2)
		}
		var compact bytes.Buffer
		_ = json.Compact(&compact, ev2.After)
		if compact.String() != string(row) {
			t.Fatalf("after changed: %s vs %s", compact.String(), row)
		}
	})
}

func TestEventIDOrder(t *testing.T) {
	ids := []string{EventID(0x1_0000_0000, 9), EventID(0x1_0000_0000, 10), EventID(0x2_0000_0000, 0)}
	for i := 1; i < len(ids); i++ {
		if ids[i-1] >= ids[i] {
			t.Fatalf("ids out of order: %v", ids)
		}
	}
}

func TestKeyAfter(t *testing.T) {
	i8 := []uint32{pgoutput.OIDInt8}
	tx := []uint32{pgoutput.OIDText, pgoutput.OIDInt4}
	cases := []struct {
		key, bound []string
		types      []uint32
		want       bool
	}{
		{[]string{"10"}, []string{"9"}, i8, true},
		{[]string{"9"}, []string{"10"}, i8, false},
		{[]string{"-1"}, []string{"-2"}, i8, true},
		{[]string{"b", "1"}, []string{"a", "9"}, tx, true},
		{[]string{"a", "10"}, []string{"a", "9"}, tx, true},
		{[]string{"a", "9"}, []string{"a", "9"}, tx, false},
		{[]string{"B"}, []string{"a"}, tx, false}, // "C" collation: bytewise
	}
	for _, c := range cases {
		if got := keyAfter(c.key, c.bound, c.types); got != c.want {
			t.Errorf("keyAfter(%v, %v) = %v", c.key, c.bound, got)
		}
	}
}
