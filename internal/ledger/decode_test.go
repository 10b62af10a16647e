package ledger_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/problem"
)

func TestDecodeRejectsBadInput(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 201)
	cases := []struct{ name, body, code string }{
		{"malformed", `{"idempotency_key":`, ledger.CodeMalformed},
		{"unknown field", `{"idempotency_key":"k","postings":[],"colour":"red"}`, problem.CodeUnknownMember},
		{"trailing data", `{"idempotency_key":"k"} {}`, ledger.CodeMalformed},
		{"number amount", `{"idempotency_key":"k","postings":[{"source":"a","destination":"b","amount":10,"asset":"USD"}]}`, ledger.CodeInvalidAmount},
		{"negative amount", `{"idempotency_key":"k","postings":[{"source":"a","destination":"b","amount":"-10","asset":"USD"}]}`, ledger.CodeInvalidAmount},
		{"fraction", `{"idempotency_key":"k","postings":[{"source":"a","destination":"b","amount":"1.5","asset":"USD"}]}`, ledger.CodeInvalidAmount},
		{"zero", `{"idempotency_key":"k","postings":[{"source":"a","destination":"b","amount":"0","asset":"USD"}]}`, ledger.CodeInvalidAmount},
		{"over u128", `{"idempotency_key":"k","postings":[{"source":"a","destination":"b","amount":"340282366920938463463374607431768211456","asset":"USD"}]}`, ledger.CodeInvalidAmount},
		{"no key", `{"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, ledger.CodeInvalid},
		{"long key", `{"idempotency_key":"` + long + `","postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, ledger.CodeInvalid},
		{"no postings", `{"idempotency_key":"k","postings":[]}`, ledger.CodeInvalid},
		{"self transfer", `{"idempotency_key":"k","postings":[{"source":"a","destination":"a","amount":"1","asset":"USD"}]}`, ledger.CodeInvalidAccount},
		{"bad account", `{"idempotency_key":"k","postings":[{"source":"a b","destination":"c","amount":"1","asset":"USD"}]}`, ledger.CodeInvalidAccount},
		{"bad asset", `{"idempotency_key":"k","postings":[{"source":"a","destination":"b","amount":"1","asset":"usd"}]}`, ledger.CodeInvalid},
		{"unknown type", `{"idempotency_key":"k","type":"refund"}`, ledger.CodeInvalid},
		{"post without id", `{"idempotency_key":"k","type":"post_pending"}`, ledger.CodeInvalid},
		{"void with amount", `{"idempotency_key":"k","type":"void_pending","pending_id":"01a2018d-4882-7aa2-8394-36e9b841fc7a","amount":"5"}`, ledger.CodeInvalidAmount},
		{"metadata not object", `{"idempotency_key":"k","metadata":[1],"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, ledger.CodeInvalid},
		// Hostile bodies: each must fail at decode time with its own code.
		{"duplicate member", `{"idempotency_key":"k","postings":[{"source":"a","destination":"b","amount":"1","amount":"90000","asset":"USD"}]}`, problem.CodeDuplicateMember},
		{"duplicate top-level member", `{"idempotency_key":"k","idempotency_key":"j","postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, problem.CodeDuplicateMember},
		{"duplicate metadata member", `{"idempotency_key":"k","metadata":{"a":1,"a":2},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, problem.CodeDuplicateMember},
		{"case-variant member", `{"idempotency_key":"k","postings":[{"source":"a","destination":"b","AMOUNT":"7","asset":"USD"}]}`, problem.CodeUnknownMember},
		{"case-variant beside member", `{"idempotency_key":"k","postings":[{"source":"a","destination":"b","amount":"1","Amount":"7","asset":"USD"}]}`, problem.CodeUnknownMember},
		{"NUL in metadata value", `{"idempotency_key":"k","metadata":{"a":"x\u0000y"},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, problem.CodeNULCharacter},
		{"NUL in metadata name", `{"idempotency_key":"k","metadata":{"a\u0000":1},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, problem.CodeNULCharacter},
		{"NUL in key", `{"idempotency_key":"k\u0000","postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, problem.CodeNULCharacter},
		{"NUL in group", `{"idempotency_key":"k","group":"\u0000","postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, problem.CodeNULCharacter},
		{"escaped backslash then u0000 is text", `{"idempotency_key":"k","metadata":{"a":"\\u0000"},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}],"colour":1}`, problem.CodeUnknownMember},
		{"lone high surrogate", `{"idempotency_key":"k\ud800","postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, problem.CodeInvalidUTF8},
		{"lone low surrogate", `{"idempotency_key":"k","metadata":{"a":"\udc00"},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, problem.CodeInvalidUTF8},
		{"invalid UTF-8", "{\"idempotency_key\":\"k\xff\",\"postings\":[{\"source\":\"a\",\"destination\":\"b\",\"amount\":\"1\",\"asset\":\"USD\"}]}", problem.CodeInvalidUTF8},
		{"deep nesting", `{"idempotency_key":"k","metadata":{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, problem.CodeNestingTooDeep},
		{"huge exponent", `{"idempotency_key":"k","metadata":{"a":1e200000},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, ledger.CodeNumberOutOfRange},
		{"long number", `{"idempotency_key":"k","metadata":{"a":` + strings.Repeat("9", 101) + `},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, ledger.CodeNumberOutOfRange},
		{"empty body", ``, ledger.CodeMalformed},
		{"timeout on posted", `{"idempotency_key":"k","timeout_seconds":5,"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, ledger.CodeInvalid},
	}
	for _, c := range cases {
		_, err := ledger.DecodeTransaction([]byte(c.body))
		if err == nil || err.Code != c.code {
			t.Errorf("%s: got %v, want %s", c.name, err, c.code)
		} else if err.Status() < 400 || err.Status() > 499 {
			t.Errorf("%s: status %d, want 4xx", c.name, err.Status())
		}
	}
}

func TestDecodeBatchLimits(t *testing.T) {
	t.Parallel()
	tx := `{"idempotency_key":"k%d","postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`
	build := func(n int, sameKey bool) string {
		var b strings.Builder
		b.WriteString(`{"transactions":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			k := i
			if sameKey {
				k = 0
			}
			b.WriteString(strings.Replace(tx, "%d", strings.Repeat("1", 1)+string(rune('a'+k%26))+strings.Repeat("z", k/26), 1))
		}
		b.WriteString("]}")
		return b.String()
	}
	if _, err := ledger.DecodeBatch([]byte(build(3, false))); err != nil {
		t.Fatalf("valid batch: %v", err)
	}
	if _, err := ledger.DecodeBatch([]byte(build(2, true))); err == nil || err.Code != ledger.CodeDuplicateKey || err.Index != 1 {
		t.Fatalf("duplicate keys: %v", err)
	}
	if _, err := ledger.DecodeBatch([]byte(build(ledger.MaxBatchTransactions+1, false))); err == nil || err.Code != ledger.CodeBatchTooLarge {
		t.Fatalf("oversized batch: %v", err)
	}
	if _, err := ledger.DecodeBatch([]byte(`{"transactions":[]}`)); err == nil || err.Code != ledger.CodeInvalid {
		t.Fatalf("empty batch: %v", err)
	}
	// An error found while decoding (not validating) still names its item.
	bad := build(3, false)
	last := strings.LastIndex(bad, `"amount":"1"`)
	bad = bad[:last] + `"amount":1` + bad[last+len(`"amount":"1"`):]
	if _, err := ledger.DecodeBatch([]byte(bad)); err == nil || err.Code != ledger.CodeInvalidAmount || err.Index != 2 {
		t.Fatalf("bad amount in item 2: %+v", err)
	}
	dup := strings.Replace(build(3, false), `"asset":"USD"`, `"asset":"USD","asset":"EUR"`, 2)
	if _, err := ledger.DecodeBatch([]byte(dup)); err == nil || err.Code != problem.CodeDuplicateMember || err.Index != 0 {
		t.Fatalf("duplicate member in item 0: %+v", err)
	}
}

func TestDigestIgnoresFormatting(t *testing.T) {
	t.Parallel()
	ba, err1 := ledger.DecodeTransaction([]byte(`{"idempotency_key":"k","metadata":{"a": 1},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`))
	bb, err2 := ledger.DecodeTransaction([]byte(`{ "postings":[{"asset":"USD","amount":"1","destination":"b","source":"a"}], "metadata":{"a":1}, "idempotency_key":"k", "type":"posted"}`))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	a, b := ba.Transactions()[0], bb.Transactions()[0]
	if ledger.Digest(&a) != ledger.Digest(&b) {
		t.Fatal("the same transaction, formatted differently, has two digests")
	}
	b.Postings[0].Destination = "c"
	if ledger.Digest(&a) == ledger.Digest(&b) {
		t.Fatal("different transactions share a digest")
	}
	// Metadata members in another order, at any depth, are the same body;
	// numbers keep their exact text.
	bc, err1 := ledger.DecodeTransaction([]byte(`{"idempotency_key":"k","metadata":{"b":{"y":1,"x":[{"q":2,"p":1}]},"a":12345678901234567890123},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`))
	bd, err2 := ledger.DecodeTransaction([]byte(`{"idempotency_key":"k","metadata":{"a":12345678901234567890123,"b":{"x":[{"p":1,"q":2}],"y":1}},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	c, d := bc.Transactions()[0], bd.Transactions()[0]
	if ledger.Digest(&c) != ledger.Digest(&d) {
		t.Fatalf("metadata member order changes the digest: %s vs %s", c.Metadata, d.Metadata)
	}
	if want := `{"a":12345678901234567890123,"b":{"x":[{"p":1,"q":2}],"y":1}}`; string(c.Metadata) != want {
		t.Fatalf("canonical metadata %s, want %s", c.Metadata, want)
	}
}

func TestAccountIDsThatRoutersRewrite(t *testing.T) {
	t.Parallel()
	for id, ok := range map[string]bool{
		"merchant:42": true, "a/b": true, "a.b": true, "...": true,
		".": false, "..": false, "a/..": false, "../a": false, "a//b": false, "/a": false, "a/": false, "a/./b": false,
	} {
		if got := ledger.ValidAccountID(id); got != ok {
			t.Errorf("ValidAccountID(%q) = %v, want %v", id, got, ok)
		}
	}
}

// FuzzDecodeBatch: any input either fails with a coded *Error or yields a
// batch that passes validation again, re-encodes, and decodes to the same
// digests (decoding is deterministic and total).
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"transactions":[{"idempotency_key":"k","postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}]}`))
	f.Add([]byte(`{"transactions":[{"idempotency_key":"k","type":"post_pending","pending_id":"01a2018d-4882-7aa2-8394-36e9b841fc7a","amount":"3"}]}`))
	f.Add([]byte(`{"transactions":[{"idempotency_key":"k","type":"pending","timeout_seconds":60,"group":"g","metadata":{"x":[1,2]},"postings":[{"source":"a:1","destination":"b/2","amount":"340282366920938463463374607431768211455","asset":"BTC"}]}]}`))
	f.Add([]byte(`{"transactions":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ledger.DecodeBatch(data)
		if err != nil {
			if err.Code == "" || err.Status() < 400 || err.Status() > 499 {
				t.Fatalf("error without a 4xx code: %+v", err)
			}
			return
		}
		txs := b.Transactions()
		enc, mErr := json.Marshal(ledger.BatchInput{Transactions: txs})
		if mErr != nil {
			t.Fatal(mErr)
		}
		b2, err := ledger.DecodeBatch(enc)
		if err != nil {
			t.Fatalf("re-encoded valid batch rejected: %v\n%s", err, enc)
		}
		again := b2.Transactions()
		for i := range txs {
			if ledger.Digest(&txs[i]) != ledger.Digest(&again[i]) {
				t.Fatalf("digest changed across a round trip: %s", enc)
			}
		}
	})
}

func FuzzDecodeAccount(f *testing.F) {
	f.Add([]byte(`{"id":"merchant:42:settlement","asset":"USD","scale":2,"rule":"debits_must_not_exceed_credits","metadata":{"a":1}}`))
	f.Add([]byte(`{"id":"","asset":"usd"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ledger.DecodeAccount(data)
		if err != nil {
			if err.Code == "" {
				t.Fatalf("error without code: %+v", err)
			}
			return
		}
		if in.Rule == "" || !json.Valid(in.Metadata) {
			t.Fatalf("accepted account without defaults: %+v", in)
		}
	})
}
