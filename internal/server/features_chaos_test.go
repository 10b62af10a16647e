package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/features/spec"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
)

// startFeatureWorker starts `serve --roles features` as a child process on
// the database at url and the broker at brokers.
func startFeatureWorker(t *testing.T, url, brokers, addr string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BULWARK_TEST_CHILD_POSTGRES="+url, "BULWARK_TEST_CHILD_ADDR="+addr,
		"BULWARK_TEST_CHILD_ADMIN_KEY="+adminKey, "BULWARK_TEST_CHILD_ROLES=features", "BULWARK_TEST_CHILD_KAFKA="+brokers)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, addr: addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) {
			c.kill()
			t.Fatalf("feature worker on %s not ready: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFeaturesChaos feeds tenant events (with repeated ids) to two feature
// worker processes of one consumer group, SIGKILLs one of them several
// times and raises the topic's partition count midway; afterwards every
// event id is in the event log once and every feature value equals the
// brute force: nothing lost, nothing counted twice.
// BULWARK_FEATURES_CHAOS_KILLS sets the number of kills (make
// features-chaos runs 100).
func TestFeaturesChaos(t *testing.T) {
	t.Parallel()
	kills := 3
	if v, err := strconv.Atoi(os.Getenv("BULWARK_FEATURES_CHAOS_KILLS")); err == nil && v > 0 {
		kills = v
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d kills", seed, kills)
	rng := rand.New(rand.NewPCG(seed, seed))
	ctx := context.Background()
	url := pgtest.NewDB(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "INSERT INTO tenants (id) VALUES ('acme')"); err != nil {
		t.Fatal(err)
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	brokers := kc.ListenAddrs()
	w := control.NewWatcher(pool, control.NewRegistry(), nil, nil)
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	eng, err := features.New(pool, w, nil, features.Config{Brokers: brokers, EventsPartitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{
		`{"name":"card_count","source":"events","entity":"card","aggregation":"count","windows":["10m","1h"]}`,
		`{"name":"card_sum","source":"events","entity":"card","aggregation":"sum","field":"amount","windows":["1h"]}`,
		`{"name":"merchant_cards","source":"events","entity":"merchant","aggregation":"distinct_count","field":"card","windows":["1h"]}`,
	} {
		def, err := spec.DecodeDefinition([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := eng.Store().Define(ctx, "acme", def); err != nil {
			t.Fatal(err)
		}
	}
	joined := strings.Join(brokers, ",")
	addrs := [2]string{freeAddr(t), freeAddr(t)}
	var mu sync.Mutex
	workers := [2]*child{startFeatureWorker(t, url, joined, addrs[0]), startFeatureWorker(t, url, joined, addrs[1])}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range workers {
			c.kill()
		}
	}()

	// Feed: batches of new events, each with a few ids sent before.
	const total = 3000
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(500*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	fed := make(chan struct{})
	feedRng := rand.New(rand.NewPCG(seed, seed+1)) // the feeder's own: rng belongs to the killer
	go func() {
		defer close(fed)
		for n := 0; n < total; {
			var recs []*kgo.Record
			for range min(50, total-n) {
				id := n
				if n > 0 && feedRng.IntN(5) == 0 {
					id = feedRng.IntN(n) // a resend
				} else {
					n++
				}
				ev := spec.Event{ID: fmt.Sprint("e", id), Time: time.Now().Add(-time.Duration(id%600) * time.Second),
					Fields: map[string]spec.Value{"card": spec.StringValue(fmt.Sprint("c", id%97)),
						"merchant": spec.StringValue(fmt.Sprint("m", id%7)), "amount": spec.IntValue(spec.IntFromInt64(int64(id)))}}
				body, _ := ev.MarshalJSON()
				recs = append(recs, &kgo.Record{Topic: features.DefaultEventsTopic, Key: []byte("acme/" + ev.ID), Value: body, Timestamp: time.Now()})
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			// Spread the feed over the kills (about 1.25 s apart).
			time.Sleep(time.Duration(kills) * 1250 * time.Millisecond * 50 / total)
		}
	}()
	for k := range kills {
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		i := rng.IntN(2)
		mu.Lock()
		workers[i].kill()
		mu.Unlock()
		if k == kills/2 {
			if err := features.AddPartitions(ctx, brokers, features.DefaultEventsTopic, 4); err != nil {
				t.Fatal(err)
			}
			// A backfill over the history fed so far, in chunks of 5 events,
			// interrupted by the kills that follow.
			def, err := spec.DecodeDefinition([]byte(`{"name":"merchant_max","source":"events","entity":"merchant","aggregation":"max","field":"amount","windows":["1h"]}`))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := eng.Store().Define(ctx, "acme", def); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("killed worker %d", i)
		c := startFeatureWorker(t, url, joined, addrs[i])
		mu.Lock()
		workers[i] = c
		mu.Unlock()
	}
	<-fed
	t.Logf("fed; waiting for the workers")
	deadline := time.Now().Add(90 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM feature_events WHERE tenant_id = 'acme'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == total {
			break
		}
		if n > total || time.Now().After(deadline) {
			mu.Lock()
			pids := [2]int{workers[0].cmd.Process.Pid, workers[1].cmd.Process.Pid}
			mu.Unlock()
			t.Fatalf("%d events in the log, want %d; workers' pids %v; %s", n, total, pids, chaosPositions(ctx, pool, prod))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("every event logged; verifying")
	rep := verifyFeatures(t, url, 30*time.Second)
	if rep.Features != 4 || rep.Events != 4*total {
		t.Fatalf("verify: %+v", rep)
	}
	t.Logf("verified %d values of %d entities after %d kills", rep.Values, rep.Entities, kills)
}

// chaosPositions describes, for a failure, each partition's stored
// position against the topic's end offset, and the consumer group.
func chaosPositions(ctx context.Context, pool *pgxpool.Pool, cl *kgo.Client) string {
	var b strings.Builder
	rows, err := pool.Query(ctx, `SELECT partition, next_offset FROM feature_offsets WHERE topic = $1 ORDER BY 1`, features.DefaultEventsTopic)
	if err != nil {
		return err.Error()
	}
	stored := map[int32]int64{}
	for rows.Next() {
		var p int32
		var n int64
		if err := rows.Scan(&p, &n); err == nil {
			stored[p] = n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err.Error()
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, features.DefaultEventsTopic)
	if err != nil {
		return err.Error()
	}
	ends.Each(func(o kadm.ListedOffset) {
		fmt.Fprintf(&b, "partition %d: stored %d, end %d; ", o.Partition, stored[o.Partition], o.Offset)
	})
	if gs, err := adm.DescribeGroups(ctx, features.DefaultGroup); err == nil {
		for _, g := range gs {
			fmt.Fprintf(&b, "group %s state %s:", g.Group, g.State)
			for _, m := range g.Members {
				if a, ok := m.Assigned.AsConsumer(); ok {
					fmt.Fprintf(&b, " member %s %v", m.ClientID, a.Topics)
				}
			}
		}
	}
	return b.String()
}
