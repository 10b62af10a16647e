package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrFenced means a newer relay with the same slot (transactional id) has
// started, or an operator command fenced this one: this instance must stop.
var ErrFenced = errors.New("relay: fenced by a newer instance of the same slot")

// sink is the transactional producer. It is used by the relay's loop
// goroutine only; promises run on kgo goroutines and only touch errMu.
type sink struct {
	cl       *kgo.Client
	adm      *kadm.Client
	cfg      *Config
	open     bool
	began    time.Time
	bytes    int64
	records  int64
	topics   map[string]int32 // partition count of topics known to exist
	errMu    sync.Mutex
	firstErr error
}

func newSink(ctx context.Context, cfg *Config) (*sink, error) {
	opts := append(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.KafkaOpts...),
		kgo.TransactionalID(TransactionalID(cfg.Slot)),
		kgo.TransactionTimeout(60*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20),
		// 10,000 records × ~0.5 KiB ≈ 5 MiB buffered before Produce blocks.
		kgo.MaxBufferedRecords(10_000),
		kgo.RecordRetries(20),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	s := &sink{cl: cl, adm: kadm.NewClient(cl), cfg: cfg, topics: map[string]int32{}}
	// InitProducerID: bumps the epoch, fencing older instances and aborting
	// their open transaction, before we read the checkpoint.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return nil, s.classify(fmt.Errorf("init producer id: %w", err))
	}
	return s, nil
}

func (s *sink) close() { s.cl.Close() }

// classify marks fencing errors, which are fatal, as ErrFenced.
func (s *sink) classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return err
}

// ensureTopic creates topic if needed and returns its partition count.
func (s *sink) ensureTopic(ctx context.Context, topic string, compacted bool) (int32, error) {
	if n, ok := s.topics[topic]; ok {
		return n, nil
	}
	parts := s.cfg.TopicPartitions
	var configs map[string]*string
	if compacted {
		parts = 1
		v := "compact"
		configs = map[string]*string{"cleanup.policy": &v}
	}
	resp, err := s.adm.CreateTopic(ctx, parts, -1, configs, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return 0, fmt.Errorf("create topic %s: %w", topic, err)
	}
	if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return 0, fmt.Errorf("create topic %s: %w", topic, resp.Err)
	}
	if err == nil && resp.Err == nil && resp.NumPartitions > 0 {
		s.topics[topic] = resp.NumPartitions
		return resp.NumPartitions, nil
	}
	td, err := s.adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("describe topic %s: %w", topic, err)
	}
	d, ok := td[topic]
	if ok && d.Err != nil {
		return 0, fmt.Errorf("describe topic %s: %w", topic, d.Err)
	}
	if !ok || len(d.Partitions) == 0 {
		return 0, fmt.Errorf("describe topic %s: no partitions in the answer", topic)
	}
	n := int32(len(d.Partitions))
	s.topics[topic] = n
	return n, nil
}

// add produces rec inside the open Kafka transaction, opening one first.
// It blocks when MaxBufferedRecords are in flight.
func (s *sink) add(ctx context.Context, rec *kgo.Record) error {
	if !s.open {
		if err := s.cl.BeginTransaction(); err != nil {
			return fmt.Errorf("begin kafka transaction: %w", err)
		}
		s.open, s.began, s.bytes, s.records = true, time.Now(), 0, 0
	}
	s.bytes += int64(len(rec.Key) + len(rec.Value))
	s.records++
	s.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			s.errMu.Lock()
			if s.firstErr == nil {
				s.firstErr = err
			}
			s.errMu.Unlock()
		}
	})
	return nil
}

// commit writes ckpt and commits the open transaction. Any error leaves
// the transaction aborted (or its outcome unknown) and the caller must
// restart from the last checkpoint read back from Kafka.
func (s *sink) commit(ctx context.Context, ckpt *Checkpoint) error {
	if !s.open {
		return nil
	}
	err := s.add(ctx, &kgo.Record{Topic: s.cfg.CheckpointTopic, Partition: 0, Key: []byte(s.cfg.Slot), Value: encodeCheckpoint(ckpt)})
	if err == nil {
		err = s.cl.Flush(ctx)
	}
	s.errMu.Lock()
	if err == nil {
		err = s.firstErr
	}
	s.firstErr = nil
	s.errMu.Unlock()
	s.open = false
	if err != nil {
		abortCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.cl.AbortBufferedRecords(abortCtx)
		_ = s.cl.EndTransaction(abortCtx, kgo.TryAbort)
		return s.classify(fmt.Errorf("produce: %w", err))
	}
	if err := s.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return s.classify(fmt.Errorf("commit kafka transaction: %w", err))
	}
	return nil
}

// writeCheckpoint commits a transaction holding only ckpt.
func (s *sink) writeCheckpoint(ctx context.Context, ckpt *Checkpoint) error {
	if !s.open {
		if err := s.cl.BeginTransaction(); err != nil {
			return fmt.Errorf("begin kafka transaction: %w", err)
		}
		s.open, s.began, s.bytes, s.records = true, time.Now(), 0, 0
	}
	return s.commit(ctx, ckpt)
}

// partition picks the partition of key among n the way Kafka's default
// partitioner does (murmur2), so that other producers agree.
func partition(key []byte, n int32) int32 {
	if n <= 1 || key == nil {
		return 0
	}
	return int32(murmur2(key)&0x7fffffff) % n
}

func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
