package features

import (
	"testing"
)

// FuzzDecodeEntry: a record of the relay's entries topic decodes to an
// event or an error, never a panic, and a decoded event carries the
// ledger fields.
func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte(`{"op":"c","after":{"tenant_id":"acme","account_id":"a","seq":3,"transaction_id":"0193a0c4-0000-7000-8000-000000000001",` +
		`"posting":0,"side":"D","effect":"posted","amount":340282366920938463463374607431768211455,"asset":"USD","created_at":"2026-11-30T10:00:00.123456Z"}}`))
	f.Add([]byte(`{"op":"r","after":{"tenant_id":"acme","account_id":"b","transaction_id":"t","posting":1,"side":"C","effect":"hold","amount":1,"asset":"EUR","created_at":"2026-11-30T10:00:00Z"}}`))
	f.Add([]byte(`{"op":"d","before":{"tenant_id":"acme"}}`))
	f.Add([]byte(`{"op":"c","after":{"amount":-1}}`))
	f.Add([]byte(`{"op":"c","after":{"amount":340282366920938463463374607431768211456}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tenant, ev, ok, err := decodeEntry(b)
		if err != nil && ok {
			t.Fatalf("ok with an error: %v", err)
		}
		if !ok {
			return
		}
		if acc, _ := ev.Get("account"); tenant == "" || acc.Str() == "" || ev.Time.IsZero() {
			t.Fatalf("decoded an entry without tenant, account or time from %q", b)
		}
		for name := range ev.Fields {
			if _, known := ledgerFieldNames[name]; !known {
				t.Fatalf("field %q is not a ledger field", name)
			}
		}
		if v, has := ev.Get("amount"); !has || v.Int().Sign() < 0 {
			t.Fatalf("amount %v", v)
		}
	})
}

var ledgerFieldNames = map[string]struct{}{"account": {}, "asset": {}, "amount": {}, "side": {}, "effect": {}, "transaction": {}}
