package export

import (
	"bytes"
	"errors"
	"net/url"
	"testing"
	"time"
)

// FuzzDecodeRequest: any body either decodes to a request that validates
// and whose digest is stable, or is refused with a problem of the table;
// it never panics.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"kind":"accounts"}`,
		`{"kind":"entries","account_id":"a:b/c","from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00+02:00","format":"jsonl","compression":"gzip"}`,
		`{"kind":"transactions","from":"2026-01-01T00:00:00.123456789Z","to":"9999-12-31T23:59:59Z"}`,
		`{"kind":"entries","from":"0001-01-01T00:00:00Z","to":"0001-01-01T00:00:01Z"}`,
		`{"kind":"accounts","format":"csv","compression":"none","x":1}`,
		`{"kind":"transactions","from":"2026-02-01T00:00:00Z","to":"2026-01-01T00:00:00Z"}`,
		`{"kind":"\u0000"}`, `[]`, `null`, ``, `{"kind":"accounts"}{}`, "{\"kind\":\"acc\xffounts\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, p := DecodeRequest(body)
		if p != nil {
			if p.Code == "" || p.Status < 400 || p.Status > 499 {
				t.Fatalf("problem %+v", p)
			}
			return
		}
		if q := req.validate(); q != nil {
			t.Fatalf("decoded request does not validate: %v", q)
		}
		if req.From != nil && (req.From.Location() != time.UTC || !req.From.Before(*req.To)) {
			t.Fatalf("range not normalised: %v %v", req.From, req.To)
		}
		if !bytes.Equal(req.digest(), req.digest()) || kinds[req.Kind] == nil {
			t.Fatal("unstable digest or unknown kind")
		}
	})
}

// FuzzParseLink: any query either parses to a 32-byte signature and a
// non-negative expiry or is ErrLinkInvalid; a link that verifies was
// signed by the key for that tenant and id.
func FuzzParseLink(f *testing.F) {
	s := NewSigner(bytes.Repeat([]byte{7}, 32))
	f.Add(s.Link("acme", "0190f1e2-0000-7000-8000-000000000001", time.Unix(2_000_000_000, 0)))
	f.Add("expires=1&sig=")
	f.Add("expires=-1&sig=AAAA")
	f.Add("expires=99999999999999999999&sig=AAAA")
	f.Add("sig=x&expires=1&expires=2")
	f.Add("expires=%00&sig=%ff")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		exp, sig, err := ParseLink(q)
		if err != nil {
			if !errors.Is(err, ErrLinkInvalid) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if exp < 0 || len(sig) != 32 {
			t.Fatalf("parsed expires %d, %d-byte sig", exp, len(sig))
		}
		err = s.CheckLink("acme", "0190f1e2-0000-7000-8000-000000000001", q, time.Unix(1_000_000_000, 0))
		if err == nil && s.Link("acme", "0190f1e2-0000-7000-8000-000000000001", time.Unix(exp, 0)) != "expires="+q.Get("expires")+"&sig="+q.Get("sig") {
			t.Fatalf("a link verified that the key did not sign: %q", raw)
		}
	})
}
