package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topics the whole-process crash test reads.
const (
	txTopic    = "bulwark.cdc.public.transactions"
	entryTopic = "bulwark.cdc.public.entries"
)

// streamReader is the crash test's independent view of the change stream:
// a plain franz-go read_committed consumer, none of the relay's code. The
// embedded broker listens on a new port after every restart, so the reader
// reconnects each time and continues from the offsets it reached.
type streamReader struct {
	next map[string]map[int32]int64 // topic → partition → next offset
	recs []streamRec
}

// streamRec is one record as read, with the envelope fields checked.
type streamRec struct {
	topic     string
	partition int32
	offset    int64
	ID        string                     `json:"id"`
	Op        string                     `json:"op"`
	After     map[string]json.RawMessage `json:"after"`
}

func newStreamReader() *streamReader {
	return &streamReader{next: map[string]map[int32]int64{}}
}

// readUntil consumes from brokers until done reports true over what has been
// read, or ctx ends.
func (s *streamReader) readUntil(ctx context.Context, brokers []string, done func() bool) error {
	parts, err := s.assign(ctx, brokers)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(parts), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	for !done() {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		var bad error
		fs.EachRecord(func(r *kgo.Record) {
			rec := streamRec{topic: r.Topic, partition: r.Partition, offset: r.Offset}
			if err := json.Unmarshal(r.Value, &rec); err != nil {
				bad = fmt.Errorf("%s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
			}
			s.recs = append(s.recs, rec)
			s.next[r.Topic][r.Partition] = r.Offset + 1
		})
		if bad != nil {
			return bad
		}
	}
	return nil
}

// assign lists the partitions of both topics (created by the relay with its
// first event) and starts each where the last read stopped.
func (s *streamReader) assign(ctx context.Context, brokers []string) (map[string]map[int32]kgo.Offset, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for {
		td, err := kadm.NewClient(cl).ListTopics(ctx, txTopic, entryTopic)
		if err == nil && td.Has(txTopic) && td.Has(entryTopic) && td.Error() == nil {
			out := map[string]map[int32]kgo.Offset{}
			for _, topic := range []string{txTopic, entryTopic} {
				out[topic] = map[int32]kgo.Offset{}
				if s.next[topic] == nil {
					s.next[topic] = map[int32]int64{}
				}
				for _, p := range td[topic].Partitions.Numbers() {
					out[topic][p] = kgo.NewOffset().At(s.next[topic][p])
				}
			}
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("topics %s, %s never appeared: %w", txTopic, entryTopic, errors.Join(err, ctx.Err()))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// txIDs counts the transactions read, by id.
func (s *streamReader) txIDs() map[string]int {
	ids := map[string]int{}
	for _, r := range s.recs {
		if r.topic == txTopic && (r.Op == "c" || r.Op == "r") {
			ids[unquote(r.After["id"])]++
		}
	}
	return ids
}

// streamReport are the figures of the exactly-once check.
type streamReport struct {
	events, txns, entries int
	duplicates            int      // event ids read more than once
	gaps                  int      // expected rows missing, or holes in a chain
	disorder              int      // entries of an account out of seq order
	extra                 int      // rows in the stream the database does not hold
	samples               []string // the first violations, for the failure message
}

func (r *streamReport) violate(format string, args ...any) {
	if len(r.samples) < 20 {
		r.samples = append(r.samples, fmt.Sprintf(format, args...))
	}
}

// check compares what was read with the database's rows: every transaction
// and entry exactly once, every event id once, each account's entries in
// seq order 1, 2, 3… without a hole.
func (s *streamReader) check(dbTx map[string]bool, dbEntries map[string]int64) streamReport {
	var rep streamReport
	rep.events = len(s.recs)
	seen := map[string]int{}
	for _, r := range s.recs {
		seen[r.ID]++
		if seen[r.ID] == 2 {
			rep.duplicates++
			rep.violate("event %s read twice (again at %s/%d@%d)", r.ID, r.topic, r.partition, r.offset)
		}
	}
	txs := s.txIDs()
	rep.txns = len(txs)
	for id := range dbTx {
		if txs[id] == 0 {
			rep.gaps++
			rep.violate("transaction %s committed but not in the stream", id)
		}
	}
	for id := range txs {
		if !dbTx[id] {
			rep.extra++
			rep.violate("transaction %s in the stream but not in the database", id)
		}
	}
	last := map[string]int64{} // account → last seq read
	for _, r := range s.recs {
		if r.topic != entryTopic || (r.Op != "c" && r.Op != "r") {
			continue
		}
		rep.entries++
		acct := unquote(r.After["tenant_id"]) + "/" + unquote(r.After["account_id"])
		seq, err := strconv.ParseInt(string(r.After["seq"]), 10, 64)
		if err != nil {
			rep.violate("entry %s: seq %s", r.ID, r.After["seq"])
			rep.extra++
			continue
		}
		switch want := last[acct] + 1; {
		case seq == want:
			last[acct] = seq
		case seq > want:
			rep.gaps++
			rep.violate("account %s: seq %d follows %d (event %s)", acct, seq, want-1, r.ID)
			last[acct] = seq
		default:
			rep.disorder++
			rep.violate("account %s: seq %d after %d (event %s)", acct, seq, last[acct], r.ID)
		}
	}
	for acct, n := range dbEntries {
		if last[acct] != n {
			rep.gaps++
			rep.violate("account %s: database chain ends at seq %d, stream at %d", acct, n, last[acct])
		}
	}
	for acct := range last {
		if _, ok := dbEntries[acct]; !ok {
			rep.extra++
			rep.violate("account %s in the stream only", acct)
		}
	}
	sort.Strings(rep.samples)
	return rep
}

func unquote(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.Trim(string(raw), `"`)
}
