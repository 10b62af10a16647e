package pgoutput_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/cdc/pgoutput"
)

// FuzzDecode feeds arbitrary messages through a Decoder and every decoded
// tuple through Row: errors are fine, panics and hangs are not. The corpus
// is seeded with every message of the captured stream.
func FuzzDecode(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "stream.bin")); err == nil {
		for _, fr := range readFrames(nil, data) {
			f.Add(fr, false)
			f.Add(fr, true)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, inStream bool) {
		m, err := pgoutput.Parse(data, inStream)
		if err != nil {
			return
		}
		d := pgoutput.NewDecoder()
		rel := &pgoutput.Relation{Name: "t", Columns: []pgoutput.Column{{Name: "a", TypeOID: pgoutput.OIDInt8}, {Name: "b", TypeOID: pgoutput.OIDJSONB}}}
		var tuples [][]pgoutput.TupleColumn
		switch m := m.(type) {
		case *pgoutput.Relation:
			rel = m
		case *pgoutput.Insert:
			tuples = append(tuples, m.New)
		case *pgoutput.Update:
			tuples = append(tuples, m.Old, m.New)
		case *pgoutput.Delete:
			tuples = append(tuples, m.Old)
		}
		for _, tup := range tuples {
			row, err := d.Row(rel, tup)
			if err != nil {
				continue
			}
			for _, fld := range row.Fields {
				if _, err := json.Marshal(fld.Value); err != nil {
					t.Fatalf("decoded value %#v does not marshal: %v", fld.Value, err)
				}
			}
		}
	})
}

// FuzzValue checks that every accepted value marshals to valid JSON.
func FuzzValue(f *testing.F) {
	for _, s := range []string{"1", "-0.5e10", "NaN", "t", `{"a":1}`, `\xdead`, "2024-01-02 03:04:05+02", "01", "1."} {
		f.Add(uint32(pgoutput.OIDNumeric), s)
		f.Add(uint32(pgoutput.OIDJSONB), s)
	}
	f.Fuzz(func(t *testing.T, oid uint32, s string) {
		v, err := pgoutput.Value(oid, []byte(s), nil)
		if err != nil {
			return
		}
		b, err := json.Marshal(v)
		if err != nil || !json.Valid(b) {
			t.Fatalf("Value(%d, %q) = %#v: marshal %s, %v", oid, s, v, b, err)
		}
	})
}

func TestValue(t *testing.T) {
	cases := []struct {
		oid  uint32
		in   string
		want string // JSON
		err  bool
	}{
		{pgoutput.OIDBool, "t", "true", false},
		{pgoutput.OIDBool, "x", "", true},
		{pgoutput.OIDInt8, "-9223372036854775808", "-9223372036854775808", false},
		{pgoutput.OIDNumeric, "12345678901234567890.000000000001", "12345678901234567890.000000000001", false},
		{pgoutput.OIDNumeric, "NaN", `"NaN"`, false},
		{pgoutput.OIDFloat8, "-Infinity", `"-Infinity"`, false},
		{pgoutput.OIDText, "a\"b", `"a\"b"`, false},
		{pgoutput.OIDJSONB, `{"a": [1, 2]}`, `{"a":[1,2]}`, false},
		{pgoutput.OIDJSON, `{bad`, "", true},
		{pgoutput.OIDBytea, `\x0001ff`, `"AAH/"`, false},
		{pgoutput.OIDBytea, `abc`, "", true},
		{pgoutput.OIDTimestamptz, "2024-01-02 03:04:05.5+02", `"2024-01-02T01:04:05.5Z"`, false},
		{pgoutput.OIDTimestamptz, "2024-01-02 03:04:05+05:30", `"2024-01-01T21:34:05Z"`, false},
		{pgoutput.OIDTimestamptz, "infinity", `"infinity"`, false},
		{pgoutput.OIDTimestamp, "2024-01-02 03:04:05", `"2024-01-02 03:04:05"`, false},
		{pgoutput.OIDUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, false},
		{1007, "{1,2}", `"{1,2}"`, false}, // int4[]: arrays as text
		{99999, "x", "", true},            // not builtin, not announced
	}
	for _, c := range cases {
		v, err := pgoutput.Value(c.oid, []byte(c.in), nil)
		if c.err {
			if err == nil {
				t.Errorf("Value(%d, %q) = %v, want error", c.oid, c.in, v)
			}
			continue
		}
		if err != nil {
			t.Errorf("Value(%d, %q): %v", c.oid, c.in, err)
			continue
		}
		got, _ := json.Marshal(v)
		if string(got) != c.want {
			t.Errorf("Value(%d, %q) = %s, want %s", c.oid, c.in, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range [][]byte{
		nil,
		{'Z'},
		{'B', 0, 0},
		{'I', 0, 0, 0, 1, 'X'},
		{'I', 0, 0, 0, 1, 'N', 0xff, 0xff}, // too many columns
		{'I', 0, 0, 0, 1, 'N', 0, 1, 't', 0xff, 0xff, 0xff, 0xff}, // negative length
		{'I', 0, 0, 0, 1, 'N', 0, 1, 'q'},
		{'T', 0x7f, 0xff, 0xff, 0xff, 0},
		{'R', 0, 0, 0, 1, 'p', 'u', 'b'}, // unterminated string
	} {
		if m, err := pgoutput.Parse(in, false); err == nil {
			t.Errorf("Parse(%q) = %#v, want error", in, m)
		}
	}
	d := pgoutput.NewDecoder()
	if _, err := d.Decode([]byte{'E'}); err == nil {
		t.Error("Stream Stop without Start accepted")
	}
}
