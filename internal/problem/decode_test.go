package problem

import (
	stdjson "encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestIsJSONContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, "application/json;charset=UTF-8": true,
		"application/merge-patch+json": true, "APPLICATION/JSON": true,
		"": false, "text/plain": false, "application/x-www-form-urlencoded": false, "multipart/form-data": false,
		"application/json; charset=latin1": false, "application/jsonx": false, "text/json+x": false, "application/json;;": false,
	} {
		if got := IsJSONContentType(ct); got != want {
			t.Errorf("IsJSONContentType(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestReadBodyLimitAndType(t *testing.T) {
	req := func(ct, body string) *http.Request {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		return r
	}
	if _, err := ReadBody(httptest.NewRecorder(), req("application/json", strings.Repeat(" ", 11)), 10); err == nil || err.Code != CodeBodyTooLarge || err.Status != 413 {
		t.Fatalf("over limit: %+v", err)
	}
	if _, err := ReadBody(httptest.NewRecorder(), req("text/plain", "{}"), 10); err == nil || err.Status != 415 {
		t.Fatalf("text/plain: %+v", err)
	}
	if _, err := ReadBody(httptest.NewRecorder(), req("", "{}"), 10); err == nil || err.Status != 415 {
		t.Fatalf("no content type with a body: %+v", err)
	}
	if b, err := ReadBody(httptest.NewRecorder(), req("", ""), 10); err != nil || len(b) != 0 {
		t.Fatalf("empty body without content type: %q %+v", b, err)
	}
}

func TestDecodeCodes(t *testing.T) {
	type inner struct {
		Amount string `json:"amount"`
	}
	type body struct {
		Key  string             `json:"key"`
		Meta stdjson.RawMessage `json:"meta"`
		List []inner            `json:"list"`
	}
	for _, c := range []struct{ in, code, pointer string }{
		{`{"key":"a","key":"b"}`, CodeDuplicateMember, ""},
		{`{"KEY":"a"}`, CodeUnknownMember, "/KEY"},
		{`{"list":[{"amount":"1"},{"amount":"1","Amount":"2"}]}`, CodeUnknownMember, "/list/1/Amount"},
		{`{"key":"\u0000"}`, CodeNULCharacter, ""},
		{`{"meta":{"\u0000":1}}`, CodeNULCharacter, ""},
		{`{"key":"\ud800x"}`, CodeInvalidUTF8, ""},
		{`{"key":"\ud800\u0041"}`, CodeInvalidUTF8, ""},
		{`{"key":"\udc00"}`, CodeInvalidUTF8, ""},
		{"{\"key\":\"\xed\xa0\x80\"}", CodeInvalidUTF8, ""}, // a surrogate encoded in UTF-8
		{`{"meta":` + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + `}`, CodeNestingTooDeep, ""},
		{`{"key":1}`, CodeMalformedJSON, "/key"},
		{`{"key":"a"} x`, CodeMalformedJSON, ""},
		{``, CodeMalformedJSON, ""},
	} {
		var v body
		err := Decode([]byte(c.in), &v)
		if err == nil || err.Code != c.code || (c.pointer != "" && err.Pointer != c.pointer) {
			t.Errorf("%s: %+v, want %s at %q", c.in, err, c.code, c.pointer)
		}
	}
	var v body
	for _, ok := range []string{
		`{"key":"\ud83d\ude00","meta":{"a":[1,{"b":"\\u0000 is text"}]}}`, // a valid pair; an escaped backslash
		`{"key":"` + strings.Repeat("\\\\", 3) + `u0000"}`,
		`{"meta":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`,
	} {
		if err := Decode([]byte(ok), &v); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// FuzzScanBody compares ScanBody with encoding/json's reading of the same
// bytes: a body ScanBody accepts (and encoding/json parses) holds no U+0000
// and no replacement character that was not in the input; a body refused
// for U+0000 or a surrogate really holds one once decoded.
func FuzzScanBody(f *testing.F) {
	for _, s := range []string{`{"a":"\u0000"}`, `{"a":"\ud800"}`, `["\\u0000"]`, `{"a":"\ud83d\ude00"}`, `[[[[1]]]]`, "\"\xff\"", `"\uFFFD"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ScanBody(data)
		var v any
		if stdjson.Unmarshal(data, &v) != nil {
			return
		}
		nul, repl := false, false
		var walk func(any)
		walk = func(x any) {
			switch y := x.(type) {
			case string:
				nul = nul || strings.ContainsRune(y, 0)
				repl = repl || strings.ContainsRune(y, utf8.RuneError)
			case []any:
				for _, e := range y {
					walk(e)
				}
			case map[string]any:
				for k, e := range y {
					walk(k)
					walk(e)
				}
			}
		}
		walk(v)
		inputRepl := strings.Contains(string(data), "\uFFFD") || strings.Contains(strings.ToLower(string(data)), `\ufffd`)
		switch {
		case err == nil && nul:
			t.Fatalf("accepted a body holding U+0000: %q", data)
		case err == nil && repl && !inputRepl:
			t.Fatalf("accepted a body that decodes lossily (invalid UTF-8 or surrogate): %q", data)
		case err != nil && err.Code == CodeNULCharacter && !nul:
			t.Fatalf("refused for U+0000 but none decoded: %q", data)
		case err != nil && err.Code == CodeInvalidUTF8 && !repl:
			t.Fatalf("refused as invalid UTF-8 but it decodes without loss: %q", data)
		}
	})
}
