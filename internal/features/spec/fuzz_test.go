package spec

import (
	"bytes"
	"fmt"
	"testing"
)

func FuzzDecodeDefinition(f *testing.F) {
	f.Add([]byte(`{"name":"f","source":"events","entity":"card","aggregation":"count","windows":["1h","10m"],"filter":"type==\"p\""}`))
	f.Add([]byte(`{"name":"out","source":"ledger","entity":"account","aggregation":"sum","field":"amount","windows":["90d"]}`))
	f.Add([]byte(`{"name":"x","windows":["0m"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := DecodeDefinition(body)
		if err != nil {
			if codeOf(err) == "" {
				t.Fatalf("error without a problem code: %v", err)
			}
			return
		}
		c := d.Canonical()
		d2, err := DecodeDefinition(c)
		if err != nil {
			t.Fatalf("canonical %s does not decode: %v", c, err)
		}
		if !bytes.Equal(d2.Canonical(), c) {
			t.Fatalf("canonical not stable: %s vs %s", c, d2.Canonical())
		}
	})
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{`type == "payment"`, `a == 1 || !(b in ["x", "y"]) && has(c)`, `x >= -5 && y != true`, `"`, `((`, `a in [1,"a",true]`} {
		f.Add(s)
	}
	ev := &Event{Fields: map[string]Value{"a": IntValue(IntFromInt64(1)), "b": StringValue("x"), "type": StringValue("payment")}}
	f.Fuzz(func(t *testing.T, src string) {
		fl, err := ParseFilter(src)
		if err != nil {
			if codeOf(err) == "" {
				t.Fatalf("error without a problem code: %v", err)
			}
			return
		}
		g, err := ParseFilter(fl.String())
		if err != nil || g.String() != fl.String() || g.Match(ev) != fl.Match(ev) {
			t.Fatalf("canonical %q of %q does not round-trip: %v", fl.String(), src, err)
		}
	})
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(`{"id":"e1","time":"2026-11-30T22:00:00Z","fields":{"card":"c1","amount":5,"ok":true}}`))
	f.Add([]byte(`{"events":[{"id":"e1","time":"2026-11-30T22:00:00.123456789-07:00","fields":{"n":-340282366920938463463374607431768211455}}]}`))
	f.Add([]byte(`{"events":[{"id":"e1","time":"x","fields":{}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := DecodeEvents(body)
		if err != nil {
			if codeOf(err) == "" {
				t.Fatalf("error without a problem code: %v", err)
			}
			return
		}
		for _, e := range evs {
			b, _ := e.MarshalJSON()
			again, err := DecodeEvent(b)
			if err != nil {
				t.Fatalf("%s does not decode: %v", b, err)
			}
			b2, _ := again.MarshalJSON()
			if !bytes.Equal(b, b2) || !again.Time.Equal(e.Time) {
				t.Fatalf("round trip %s != %s", b, b2)
			}
		}
	})
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"1m", "90d", "60m", "0m", "1s", "2160h", "99999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindow(s)
		if err != nil {
			return
		}
		if w < MinWindow || w > MaxWindow || w%MinWindow != 0 {
			t.Fatalf("ParseWindow(%q) = %v out of range", s, w.Duration())
		}
		if w2, err := ParseWindow(w.String()); err != nil || w2 != w {
			t.Fatalf("String %q does not round-trip", w.String())
		}
	})
}

func BenchmarkFilterMatch(b *testing.B) {
	f, err := ParseFilter(`type == "payment" && amount >= 1000 && country in ["DE", "FR", "NL"] && !has(test)`)
	if err != nil {
		b.Fatal(err)
	}
	ev := &Event{Fields: map[string]Value{
		"type": StringValue("payment"), "amount": IntValue(IntFromInt64(5000)), "country": StringValue("FR"),
		"card": StringValue("c-123"), "merchant": StringValue("m-9"),
	}}
	b.ReportAllocs()
	for b.Loop() {
		if !f.Match(ev) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkDecodeEvents(b *testing.B) {
	var body bytes.Buffer
	body.WriteString(`{"events":[`)
	for i := range 100 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"id":"evt-%d","time":"2026-11-30T22:00:%02d.123Z","fields":{"card":"card-%d","amount":%d,"type":"payment","country":"FR"}}`, i, i%60, i%7, 1000+i)
	}
	body.WriteString(`]}`)
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if evs, err := DecodeEvents(body.Bytes()); err != nil || len(evs) != 100 {
			b.Fatal(err)
		}
	}
}
