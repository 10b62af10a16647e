package ledger_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
)

func TestDecodeRejectsBadInput(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 201)
	cases := []struct{ name, body, code string }{
		{"malformed", `{"idempotency_key":`, ledger.CodeMalformed},
		{"unknown field", `{"idempotency_key":"k","postings":[],"colour":"red"}`, ledger.CodeMalformed},
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
		{"timeout on posted", `{"idempotency_key":"k","timeout_seconds":5,"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`, ledger.CodeInvalid},
	}
	for _, c := range cases {
		_, err := ledger.DecodeTransaction(strings.NewReader(c.body))
		if err == nil || err.Code != c.code {
			t.Errorf("%s: got %v, want %s", c.name, err, c.code)
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
	if _, err := ledger.DecodeBatch(strings.NewReader(build(3, false))); err != nil {
		t.Fatalf("valid batch: %v", err)
	}
	if _, err := ledger.DecodeBatch(strings.NewReader(build(2, true))); err == nil || err.Code != ledger.CodeDuplicateKey || err.Index != 1 {
		t.Fatalf("duplicate keys: %v", err)
	}
	if _, err := ledger.DecodeBatch(strings.NewReader(build(ledger.MaxBatchTransactions+1, false))); err == nil || err.Code != ledger.CodeBatchTooLarge {
		t.Fatalf("oversized batch: %v", err)
	}
	if _, err := ledger.DecodeBatch(strings.NewReader(`{"transactions":[]}`)); err == nil || err.Code != ledger.CodeInvalid {
		t.Fatalf("empty batch: %v", err)
	}
}

func TestDigestIgnoresFormatting(t *testing.T) {
	t.Parallel()
	a, err1 := ledger.DecodeTransaction(strings.NewReader(`{"idempotency_key":"k","metadata":{"a": 1},"postings":[{"source":"a","destination":"b","amount":"1","asset":"USD"}]}`))
	b, err2 := ledger.DecodeTransaction(strings.NewReader(`{ "postings":[{"asset":"USD","amount":"1","destination":"b","source":"a"}], "metadata":{"a":1}, "idempotency_key":"k", "type":"posted"}`))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if ledger.Digest(&a) != ledger.Digest(&b) {
		t.Fatal("the same transaction, formatted differently, has two digests")
	}
	b.Postings[0].Destination = "c"
	if ledger.Digest(&a) == ledger.Digest(&b) {
		t.Fatal("different transactions share a digest")
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
		txs, err := ledger.DecodeBatch(bytes.NewReader(data))
		if err != nil {
			if err.Code == "" || err.Status() < 400 || err.Status() > 499 {
				t.Fatalf("error without a 4xx code: %+v", err)
			}
			return
		}
		enc, mErr := json.Marshal(ledger.BatchInput{Transactions: txs})
		if mErr != nil {
			t.Fatal(mErr)
		}
		again, err := ledger.DecodeBatch(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("re-encoded valid batch rejected: %v\n%s", err, enc)
		}
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
		in, err := ledger.DecodeAccount(bytes.NewReader(data))
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
