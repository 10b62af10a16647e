package client

import (
	"errors"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/problem"
)

// TestSentinelsMatchServer: every problem code of the server has a
// sentinel with its status, and no sentinel names a code the server does
// not have (the client may not import the server's table, so it keeps a
// copy; this test keeps the copy honest).
func TestSentinelsMatchServer(t *testing.T) {
	defs := problem.Defs()
	if len(sentinels) != len(defs) {
		t.Errorf("%d sentinels, %d server codes", len(sentinels), len(defs))
	}
	for _, d := range defs {
		if got := statusOf(d.Code); got != d.Status {
			t.Errorf("code %s: client status %d, server %d", d.Code, got, d.Status)
			continue
		}
		e := &Error{Status: d.Status, Code: d.Code, Index: -1}
		n := 0
		for _, s := range sentinels {
			if errors.Is(e, s) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("code %s matches %d sentinels, want 1", d.Code, n)
		}
	}
}
