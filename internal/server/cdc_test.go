package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/server"
)

// TestServeStreamsLedgerChanges runs every role in one process, as `bulwark
// serve` does, with the embedded broker: a committed transaction appears on
// the transactions topic for a read_committed consumer, and an async
// request's outcome row on the journal topic.
func TestServeStreamsLedgerChanges(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	admin, _ := startServerIn(t, dataDir, server.RoleAPI, server.RoleWorkers, server.RoleCDC)
	c := newTenant(t, admin, "acme")
	c.do(t, "POST", "/v1/accounts", map[string]any{"id": "a", "asset": "USD"})
	c.do(t, "POST", "/v1/accounts", map[string]any{"id": "b", "asset": "USD"})
	r := c.do(t, "POST", "/v1/transactions", transferBody("streamed", "a", "b", "42"))
	if r.status != 201 {
		t.Fatalf("transfer: %d %s", r.status, r.raw)
	}
	txID := r.body["id"].(string)
	addrs, err := readAddr(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics("bulwark.cdc.public.transactions"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("transaction %s never reached the stream", txID)
		}
		found := false
		fs.EachRecord(func(rec *kgo.Record) {
			var ev struct {
				Op    string         `json:"op"`
				After map[string]any `json:"after"`
			}
			if json.Unmarshal(rec.Value, &ev) == nil && ev.After["id"] == txID {
				found = ev.Op == "c" || ev.Op == "r"
			}
		})
		if found {
			return
		}
	}
}

func readAddr(dataDir string) ([]string, error) {
	b, err := osReadFile(dataDir + "/kafka/ADDR")
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSpace(string(b)), ","), nil
}
