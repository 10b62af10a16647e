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
		kgo.RecordPartitioner(keyPartitioner{keyed: kgo.StickyKeyPartitioner(nil), manualTopic: cfg.CheckpointTopic}),
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

// keyPartitioner places keyed records with franz-go's Kafka-compatible
// key hashing (murmur2, as Kafka's default partitioner: other producers of
// the same keys agree), and keyless ones (a truncate, copied to every
// partition so that it is ordered against every key) where the relay put
// them. Every record is placed by its key or its own Partition, never by
// load, so a key's events stay in one partition, in order. The checkpoint
// topic's records go where the relay puts them (partition 0, where it
// reads them back).
type keyPartitioner struct {
	keyed       kgo.Partitioner
	manualTopic string
}

func (p keyPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == p.manualTopic {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return keyTopicPartitioner{p.keyed.ForTopic(topic)}
}

type keyTopicPartitioner struct{ keyed kgo.TopicPartitioner }

func (keyTopicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p keyTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Key == nil {
		return int(r.Partition)
	}
	return p.keyed.Partition(r, n)
}
