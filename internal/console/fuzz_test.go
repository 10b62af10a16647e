package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/console"
	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/problem"
	"github.com/bulwark-ledger/bulwark/internal/tenant"
)

// FuzzChangeBody: whatever body a signed-in browser sends to the settings
// and preset routes, the console either refuses it with a 4xx problem
// before the admin API sees it, or forwards a strict JSON body with a
// non-blank reason and the session's operator. The admin API here only
// records what reaches it (its own decoding is fuzzed in control).
func FuzzChangeBody(f *testing.F) {
	for _, seed := range []string{
		`{"set":{"quota.burst":"5"},"reason":"drill"}`,
		`{"unset":["quota.burst"],"reason":"r"}`,
		`{"set":{"quota.burst":"5"}}`,
		`{"set":{},"reason":" "}`,
		`{"tenant":"acme","reason":"surge"}`,
		`{"reason":"a","reason":"b"}`,
		`{"set":{"k":1},"reason":"x"}`,
		`{"operator":"mallory","reason":"x"}`,
		"{\"reason\":\"\u0000\"}",
		`[]`, ``, `nul`,
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	var forwarded []byte
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusOK)
	})
	con, err := console.New(console.Config{
		Authenticate: func(_ context.Context, key string) (tenant.Principal, error) {
			if key == "admin" {
				return tenant.Principal{Admin: true, KeyID: "admin"}, nil
			}
			return tenant.Principal{}, tenant.ErrUnauthenticated
		},
		API: api, Gatherer: prometheus.NewRegistry(), Snapshot: control.NewWatcher(nil, control.NewRegistry(), nil, nil).Current,
		Registry: control.NewRegistry(),
	})
	if err != nil {
		f.Fatal(err)
	}
	in := httptest.NewRequest("POST", "/console/api/signin", strings.NewReader("key=admin&operator=fuzz"))
	in.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	con.ServeHTTP(rec, in)
	var sess struct {
		CSRF string `json:"csrf_token"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &sess) != nil {
		f.Fatalf("sign-in: %d %s", rec.Code, rec.Body)
	}
	cookie := rec.Result().Cookies()[0]
	f.Fuzz(func(t *testing.T, body string, preset bool) {
		method, path := "PATCH", "/console/api/admin/settings/tenants/acme"
		if preset {
			method, path = "POST", "/console/api/admin/presets/surge/apply"
		}
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(console.CSRFHeader, sess.CSRF)
		req.AddCookie(cookie)
		forwarded = nil
		rec := httptest.NewRecorder()
		con.ServeHTTP(rec, req)
		if forwarded == nil {
			if rec.Code < 400 || rec.Code >= 500 || rec.Header().Get("Content-Type") != problem.ContentType {
				t.Fatalf("refused body %q: %d %s", body, rec.Code, rec.Header().Get("Content-Type"))
			}
			return
		}
		var out struct {
			Reason   string `json:"reason"`
			Operator string `json:"operator"`
		}
		if err := json.Unmarshal(forwarded, &out); err != nil || strings.TrimSpace(out.Reason) == "" || out.Operator != "fuzz" {
			t.Fatalf("body %q forwarded as %s (%v)", body, forwarded, err)
		}
	})
}
