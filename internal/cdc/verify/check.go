package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/cdc/relay"
)

func (m *model) stats() (txns, changes int) {
	for _, s := range m.steps {
		changes += len(s)
	}
	return m.txns, changes
}

func topics() []string {
	out := make([]string, len(Tables))
	for i, t := range Tables {
		out[i] = "verify.public." + t
	}
	return out
}

// readAll consumes every topic with read_committed until the end marker
// has arrived and every partition is read to its last stable offset.
func readAll(ctx context.Context, brokers []string, timeout time.Duration) ([]relay.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics()...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []relay.Event
	next := map[string]int64{} // topic/partition -> next offset
	var ends map[string]int64
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("verify: the stream did not deliver everything within %v (read %d events)", timeout, len(out))
		}
		var bad error
		sawEnd := false
		fs.EachRecord(func(r *kgo.Record) {
			next[fmt.Sprintf("%s/%d", r.Topic, r.Partition)] = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			var e relay.Event
			if err := json.Unmarshal(r.Value, &e); err != nil {
				bad = fmt.Errorf("verify: bad event at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
				return
			}
			if e.Source.Table == "v_end" && e.Op == relay.OpCreate {
				sawEnd = true
			}
			out = append(out, e)
		})
		if bad != nil {
			return nil, bad
		}
		if sawEnd && ends == nil {
			adm := kadm.NewClient(cl)
			lo, err := adm.ListCommittedOffsets(ctx, topics()...)
			if err != nil {
				return nil, err
			}
			ends = map[string]int64{}
			lo.Each(func(o kadm.ListedOffset) { ends[fmt.Sprintf("%s/%d", o.Topic, o.Partition)] = o.Offset })
		}
		if ends != nil && caughtUp(next, ends) {
			return out, nil
		}
	}
}

func caughtUp(next, ends map[string]int64) bool {
	for tp, end := range ends {
		if end > 0 && next[tp] < end {
			return false
		}
	}
	return true
}

// observed is one event reduced to what the model knows.
type observed struct {
	op  string
	ver int // -1 when the event does not carry it (delete by key)
	id  string
}

func eventKey(e relay.Event) (string, observed, error) {
	row := e.After
	if row == nil || string(row) == "null" {
		row = e.Before
	}
	var f struct {
		ID   *int64 `json:"id"`
		K    string `json:"k"`
		N    int64  `json:"n"`
		A    int64  `json:"a"`
		Ver  *int   `json:"ver"`
		Pay  string `json:"payload"`
		Note string `json:"note"`
	}
	if err := json.Unmarshal(row, &f); err != nil {
		return "", observed{}, err
	}
	o := observed{op: e.Op, ver: -1, id: e.ID}
	if f.Ver != nil {
		o.ver = *f.Ver
	}
	if strings.Contains(f.Pay, "ROLLBACK") || strings.Contains(f.Note, "ROLLBACK") {
		return "", o, fmt.Errorf("event %s carries rolled-back work", e.ID)
	}
	switch e.Source.Table {
	case "v_acct":
		if f.ID == nil {
			b, _ := json.Marshal(e)
			return "", o, fmt.Errorf("event without id: %s", b)
		}
		return fmt.Sprintf("v_acct/%d", *f.ID), o, nil
	case "v_tag":
		return fmt.Sprintf("v_tag/%s|%d", f.K, f.N), o, nil
	case "v_full":
		return fmt.Sprintf("v_full/%d", f.A), o, nil
	}
	return "v_end/1", o, nil
}

// check compares the events with the committed history. Per key, the
// events must be an optional snapshot read of some committed version
// followed by exactly the committed changes after it, or, when the key did
// not exist at the snapshot, exactly its changes from an insert on.
func check(m *model, evs []relay.Event) []string {
	var v []string
	ids := map[string]bool{}
	got := map[string][]observed{}
	for _, e := range evs {
		if ids[e.ID] {
			v = append(v, "duplicate event "+e.ID)
		}
		ids[e.ID] = true
		k, o, err := eventKey(e)
		if err != nil {
			v = append(v, err.Error())
			continue
		}
		got[k] = append(got[k], o)
	}
	delete(got, "v_end/1")
	for k, want := range m.steps {
		if msg := matchKey(want, got[k]); msg != "" {
			v = append(v, fmt.Sprintf("%s: %s (want %v, got %v)", k, msg, want, got[k]))
		}
		delete(got, k)
	}
	for k, o := range got {
		v = append(v, fmt.Sprintf("%s: events for a key never committed: %v", k, o))
	}
	return v
}

func matchKey(want []step, got []observed) string {
	if len(got) == 0 {
		if len(want) == 0 || want[len(want)-1].op == "d" {
			return "" // gone before the snapshot, or never existed
		}
		return "no events"
	}
	start := -1
	rest := got
	if got[0].op == relay.OpRead {
		for i, s := range want {
			if s.op != "d" && s.ver == got[0].ver {
				start = i + 1
			}
		}
		if start < 0 {
			return fmt.Sprintf("snapshot read of version %d never committed", got[0].ver)
		}
		rest = got[1:]
	} else {
		// The first event must be an insert that followed the snapshot.
		for i := len(want) - 1; i >= 0; i-- {
			if want[i].op == "c" && want[i].ver == got[0].ver && (len(want)-i == len(got)) {
				start = i
				break
			}
		}
		if start < 0 {
			return "stream does not start at an insert of the history"
		}
	}
	if len(rest) != len(want)-start {
		return fmt.Sprintf("%d events after the start, want %d", len(rest), len(want)-start)
	}
	for i, o := range rest {
		s := want[start+i]
		if o.op != s.op || (o.ver >= 0 && o.ver != s.ver) {
			return fmt.Sprintf("event %d is %s@%d, want %s@%d", i, o.op, o.ver, s.op, s.ver)
		}
		if o.op == relay.OpRead {
			return "snapshot read after stream events"
		}
		if i > 0 && rest[i-1].id >= o.id {
			return "events out of commit order"
		}
	}
	return ""
}
