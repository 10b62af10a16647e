package rehearsal

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// scripted is an HTTP server answering as a Bulwark would, on a script:
// payments cycle through 201, 429 quota_exceeded, 503 overloaded and 500;
// reads answer 200 after readDelay. It stands in for the server so that
// the generator's accounting can be checked against known answers (the
// end-to-end run against a real server is TestLoadSelf in internal/cli).
func scripted(t *testing.T, readDelay time.Duration, paymentsStatus func(n int64) int) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("POST /v1/accounts", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"load-0","asset":"LOAD","scale":0}`))
	})
	mux.HandleFunc("GET /v1/accounts/{id}", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(readDelay)
		_, _ = w.Write([]byte(`{"id":"load-0","asset":"LOAD","scale":0}`))
	})
	mux.HandleFunc("POST /v1/transactions", func(w http.ResponseWriter, _ *http.Request) {
		status := paymentsStatus(n.Add(1))
		code := map[int]string{429: "quota_exceeded", 503: "overloaded", 500: "internal"}[status]
		if code == "" {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"id":"tx_1","state":"posted"}`))
			return
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"code":"` + code + `"}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func testConfig(url string) Config {
	cfg := Config{URL: url, Keys: []string{"bwk_test", "bwk_other"}, Mix: []Share{{ClassPayments, 1}, {"reads", 1}}, MaxInFlight: 4,
		RequestTimeout: 2 * time.Second, Accounts: 2}
	cfg.EnsureDefaults()
	return cfg
}

// TestStageAccounting: every arrival ends in one outcome, rejections are
// counted by code, other statuses are errors, and arrivals due while
// MaxInFlight requests are outstanding (slow reads) are dropped.
func TestStageAccounting(t *testing.T) {
	srv := scripted(t, 300*time.Millisecond, func(n int64) int { return []int{201, 429, 503, 500}[n%4] })
	cfg := testConfig(srv.URL)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tg, err := open(ctx, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tg.close(ctx); err != nil {
			t.Error(err)
		}
	}()
	ts, _ := newGenerator(&cfg, tg).stage(ctx, "test", 100, 500*time.Millisecond)
	pay, reads := ts[0], ts[1]
	if total := pay.offered + reads.offered; total != 50 {
		t.Errorf("offered %d, want 100/s × 0.5 s = 50", total)
	}
	if reads.dropped == 0 {
		t.Errorf("reads %+v: want drops (4 in flight at most, reads take 300 ms)", reads)
	}
	if pay.rejected["quota_exceeded"] == 0 && pay.rejected["overloaded"] == 0 && pay.errors == 0 {
		t.Errorf("payments %+v: want rejections by code and errors", pay)
	}
	for code := range pay.rejected {
		if code != "quota_exceeded" && code != "overloaded" {
			t.Errorf("rejection code %q", code)
		}
	}
}

// TestNoCapacity: payments that fail already at the start rate stop the
// run with ErrNoCapacity, after the capacity search.
func TestNoCapacity(t *testing.T) {
	srv := scripted(t, 0, func(int64) int { return 503 })
	cfg := testConfig(srv.URL)
	cfg.StepDuration = 200 * time.Millisecond
	rep, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrNoCapacity) || len(rep.CapacitySteps) != 1 || rep.CapacitySteps[0].Good {
		t.Fatalf("Run = %+v, %v; want ErrNoCapacity after one bad step", rep, err)
	}
}

// TestRefusesDeadURL: a URL that does not answer is bad input.
func TestRefusesDeadURL(t *testing.T) {
	srv := scripted(t, 0, func(int64) int { return 201 })
	cfg := testConfig(srv.URL)
	srv.Close()
	if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrBadInput) {
		t.Fatalf("Run on a closed server = %v, want ErrBadInput", err)
	}
}
