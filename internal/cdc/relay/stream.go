package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/cdc/pgoutput"
	"github.com/bulwark-ledger/bulwark/internal/cdc/repl"
)

// HeartbeatPrefix is the pg_logical_emit_message prefix of heartbeats.
const HeartbeatPrefix = "bulwark.cdc.heartbeat"

// session is the state of one connected run, owned by its goroutine.
type session struct {
	r      *Relay
	cfg    *Config
	sink   *sink
	conn   *pgx.Conn // catalog and snapshot queries, loop goroutine only
	dbName string

	// ckpt is the checkpoint read at start: what Kafka already holds.
	ckpt Checkpoint
	// progress is what Kafka will hold once the open transaction commits.
	progress Checkpoint
	// completeEnd is the end LSN of the last complete transaction processed;
	// acked is what was confirmed to PostgreSQL.
	completeEnd, acked, received pgoutput.LSN
	lastCommitTime               time.Time

	tr txnTracing // spans of the open Kafka transaction (trace.go)

	dec     *pgoutput.Decoder
	tables  map[uint32]*table
	txn     *txnState
	streams map[uint32]*spill
	cur     *spill // open Stream Start block
}

// table is what the relay knows of a relation.
type table struct {
	schema, name, topic string
	keyCols             []string
	keyTypes            []uint32
	rel                 *pgoutput.Relation
}

// txnState is the transaction being emitted.
type txnState struct {
	commitLSN  pgoutput.LSN
	xid        uint32
	commitTime time.Time
	pos        int64
}

// change is a decoded change before its position is known; streamed
// transactions spill these to disk as JSON lines.
type change struct {
	SubXid    uint32          `json:"x,omitempty"`
	Op        string          `json:"o"`
	Schema    string          `json:"s"`
	Table     string          `json:"t"`
	Topic     string          `json:"p"`
	Key       json.RawMessage `json:"k,omitempty"`
	KeyText   []string        `json:"kt,omitempty"` // for snapshot boundaries
	Before    json.RawMessage `json:"b,omitempty"`
	After     json.RawMessage `json:"a,omitempty"`
	Unchanged []string        `json:"u,omitempty"`
	LSN       pgoutput.LSN    `json:"l"`
}

func (s *session) stream(ctx context.Context, rc *repl.Conn) error {
	cfg := s.cfg
	s.dec = pgoutput.NewDecoder()
	s.tables = map[uint32]*table{}
	s.streams = map[uint32]*spill{}
	removeStaleSpills(cfg.SpillDir)
	defer s.dropSpills()
	s.progress = s.ckpt
	s.completeEnd = s.ckpt.EndLSN
	st, err := rc.StartReplication(ctx, cfg.Slot, 0, repl.Options{Publications: []string{cfg.Publication}, Streaming: true, Messages: true})
	if err != nil {
		return classifyStreamErr(ctx, s.conn, cfg, err)
	}
	defer st.Close()
	hbCtx, stopHB := context.WithCancel(ctx)
	hbErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); hbErr <- s.r.heartbeats(hbCtx) }()
	defer func() { stopHB(); wg.Wait() }()

	status := time.NewTicker(cfg.StatusInterval)
	defer status.Stop()
	flush := time.NewTimer(cfg.FlushInterval)
	defer flush.Stop()
	for {
		select {
		case f := <-st.Frames():
			if err := s.frame(ctx, st, f); err != nil {
				return err
			}
			if s.sink.open && len(st.Frames()) == 0 && s.txn == nil && s.cur == nil {
				if err := s.commit(ctx, st); err != nil {
					return err
				}
			}
		case <-st.Done():
			return classifyStreamErr(ctx, s.conn, cfg, st.Err())
		case <-flush.C:
			flush.Reset(cfg.FlushInterval)
			if s.sink.open && time.Since(s.sink.began) >= cfg.FlushInterval {
				if err := s.commit(ctx, st); err != nil {
					return err
				}
			}
		case <-status.C:
			if err := st.SendStatus(max(s.received, s.acked), s.acked, false); err != nil {
				return err
			}
		case err := <-hbErr:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return s.shutdown(st)
		}
	}
}

// shutdown commits what the open Kafka transaction holds and confirms it.
func (s *session) shutdown(st *repl.Stream) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.commit(ctx, st); err != nil {
		return err
	}
	return nil
}

func (s *session) frame(ctx context.Context, st *repl.Stream, f repl.Frame) error {
	if f.Kind == 'k' {
		s.received = max(s.received, f.ServerWALEnd)
		if f.ReplyRequested {
			return st.SendStatus(max(s.received, s.acked), s.acked, false)
		}
		return nil
	}
	s.received = max(s.received, f.WALStart)
	m, err := s.dec.Decode(f.Data)
	if err != nil {
		return err
	}
	return s.message(ctx, st, m, f.WALStart)
}

func (s *session) message(ctx context.Context, st *repl.Stream, m pgoutput.Message, lsn pgoutput.LSN) error {
	switch m := m.(type) {
	case *pgoutput.Begin:
		s.txn = &txnState{commitLSN: m.FinalLSN, xid: m.Xid, commitTime: m.CommitTime}
		s.traceBegin()
	case *pgoutput.Commit:
		if s.txn == nil {
			return errors.New("relay: Commit without Begin")
		}
		return s.endTxn(ctx, st, m.EndLSN)
	case *pgoutput.Relation:
		return s.relation(ctx, m)
	case *pgoutput.Insert, *pgoutput.Update, *pgoutput.Delete, *pgoutput.Truncate:
		chs, err := s.decodeChange(m, lsn)
		if err != nil {
			return err
		}
		for _, c := range chs {
			if s.cur != nil {
				if err := s.cur.write(c); err != nil {
					return err
				}
				continue
			}
			if s.txn == nil {
				return errors.New("relay: change outside a transaction")
			}
			if err := s.emit(ctx, st, c); err != nil {
				return err
			}
		}
	case *pgoutput.StreamStart:
		sp, ok := s.streams[m.Xid]
		if !ok && !m.FirstSegment {
			// PostgreSQL re-streams a transaction from its first segment
			// after a reconnect; anything else would shift positions.
			return fmt.Errorf("relay: stream of xid %d continues without its first segment", m.Xid)
		}
		if !ok {
			if len(s.streams) >= s.cfg.MaxOpenStreams {
				return fmt.Errorf("relay: more than %d streamed transactions in progress (MaxOpenStreams)", s.cfg.MaxOpenStreams)
			}
			var err error
			if sp, err = newSpill(s.cfg.SpillDir, m.Xid); err != nil {
				return err
			}
			s.streams[m.Xid] = sp
			s.r.m.openStreams.Set(float64(len(s.streams)))
		}
		s.cur = sp
	case *pgoutput.StreamStop:
		s.cur = nil
	case *pgoutput.StreamAbort:
		sp, ok := s.streams[m.Xid]
		if !ok {
			return nil // aborted before any change was streamed
		}
		if m.Xid == m.SubXid {
			sp.remove()
			delete(s.streams, m.Xid)
			s.r.m.openStreams.Set(float64(len(s.streams)))
			return nil
		}
		sp.aborted[m.SubXid] = true
	case *pgoutput.StreamCommit:
		return s.streamCommit(ctx, st, m)
	case *pgoutput.LogicalMessage, *pgoutput.Type, *pgoutput.Origin:
		// Heartbeats and other messages carry no change; types are cached
		// by the decoder.
	}
	return nil
}

func (s *session) streamCommit(ctx context.Context, st *repl.Stream, m *pgoutput.StreamCommit) error {
	sp, ok := s.streams[m.Xid]
	delete(s.streams, m.Xid)
	s.r.m.openStreams.Set(float64(len(s.streams)))
	s.txn = &txnState{commitLSN: m.CommitLSN, xid: m.Xid, commitTime: m.CommitTime}
	s.traceBegin()
	if ok {
		defer sp.remove()
		err := sp.replay(func(c *change) error {
			if sp.aborted[c.SubXid] {
				return nil
			}
			return s.emit(ctx, st, c)
		})
		if err != nil {
			return err
		}
	}
	return s.endTxn(ctx, st, m.EndLSN)
}

// emit produces c at the next position of the current transaction unless
// Kafka already holds it or a snapshot boundary covers it.
func (s *session) emit(ctx context.Context, st *repl.Stream, c *change) error {
	t := s.txn
	pos := t.pos
	t.pos++
	if s.ckpt.covers(t.commitLSN, pos) {
		s.r.m.skipped.Inc()
		return nil
	}
	s.progress.LSN, s.progress.Pos, s.progress.Complete = t.commitLSN, pos+1, false
	if s.coveredBySnapshot(t.commitLSN, c) {
		return nil
	}
	ev := Event{
		ID: EventID(t.commitLSN, pos), Op: c.Op, Before: c.Before, After: c.After, Unchanged: c.Unchanged,
		Source: Source{Database: s.dbName, Schema: c.Schema, Table: c.Table, LSN: c.LSN.String(),
			CommitLSN: t.commitLSN.String(), Xid: t.xid, CommitTime: t.commitTime, Pos: pos},
	}
	if err := s.produce(ctx, c.Topic, c.Key, &ev); err != nil {
		return err
	}
	s.r.m.events.WithLabelValues(c.Op).Inc()
	if s.sink.bytes >= s.cfg.MaxTxnBytes {
		return s.commit(ctx, st)
	}
	return nil
}

// produce sends ev keyed by key; a keyless truncate goes to every
// partition so that it is ordered against every key.
func (s *session) produce(ctx context.Context, topic string, key []byte, ev *Event) error {
	n, err := s.sink.ensureTopic(ctx, topic, false)
	if err != nil {
		return err
	}
	began := s.traceEncodeStart()
	val := appendEvent(make([]byte, 0, 256+len(ev.Before)+len(ev.After)), ev)
	s.traceEncoded(ctx, began)
	if ev.Op == OpTruncate {
		for p := range n {
			if err := s.sink.add(ctx, &kgo.Record{Topic: topic, Partition: p, Value: val}); err != nil {
				return err
			}
		}
		return nil
	}
	return s.sink.add(ctx, &kgo.Record{Topic: topic, Key: key, Value: val})
}

func (s *session) endTxn(ctx context.Context, st *repl.Stream, end pgoutput.LSN) error {
	t := s.txn
	s.txn = nil
	s.traceEndTxn(t)
	s.progress.LSN, s.progress.Pos, s.progress.Complete, s.progress.EndLSN = t.commitLSN, t.pos, true, end
	s.completeEnd = end
	s.lastCommitTime = t.commitTime
	if !s.sink.open {
		// Nothing of it is waiting for Kafka (no changes, or all skipped).
		return s.ack(st, end)
	}
	if s.sink.bytes >= s.cfg.MaxTxnBytes || time.Since(s.sink.began) >= s.cfg.FlushInterval {
		return s.commit(ctx, st)
	}
	return nil
}

// commit commits the open Kafka transaction with the current progress,
// then confirms the last complete transaction to PostgreSQL.
func (s *session) commit(ctx context.Context, st *repl.Stream) error {
	if !s.sink.open {
		return nil
	}
	records := s.sink.records
	done := s.traceStage(ctx, "cdc.kafka_commit")
	if err := s.sink.commit(ctx, &s.progress); err != nil {
		s.r.m.kafkaTxns.WithLabelValues("error").Inc()
		done(err)
		s.traceKafkaEnd(records, err)
		return err
	}
	done(nil)
	s.r.m.kafkaTxns.WithLabelValues("commit").Inc()
	s.r.m.kafkaTxnRecords.Observe(float64(records))
	if !s.lastCommitTime.IsZero() {
		s.r.m.lastCommit.Set(float64(s.lastCommitTime.UnixNano()) / 1e9)
		s.r.m.secondsBehind.Set(time.Since(s.lastCommitTime).Seconds())
	}
	done = s.traceStage(ctx, "cdc.lsn_confirm")
	err := s.ack(st, s.completeEnd)
	done(err)
	s.traceKafkaEnd(records, err)
	return err
}

func (s *session) ack(st *repl.Stream, lsn pgoutput.LSN) error {
	if lsn <= s.acked {
		return nil
	}
	s.acked = lsn
	return st.SendStatus(max(s.received, lsn), lsn, false)
}
