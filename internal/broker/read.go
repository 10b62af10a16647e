package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrRangeUnreachable is returned by ReadRange when the partition's
// readable end (high watermark, or last stable offset for read_committed)
// stays below the requested end.
var ErrRangeUnreachable = errors.New("broker: partition does not reach the requested offset")

// ReadRange reads the records of topic/partition in [from, to) and calls fn
// for each, control records (transaction markers) included, in offset order.
//
// It tracks the fetch position, not the offsets of the records it was
// given: a read_committed fetch silently drops the batches of aborted
// transactions, and compaction removes records, so "wait until a record at
// to-1 arrives" can wait forever. The position always advances past what
// the broker returned, so the read ends as soon as the broker has served
// everything below to.
//
// It blocks until done, ctx ends, or the partition's readable end is seen
// below to (ErrRangeUnreachable). Each fetch waits at most 250 ms and asks
// for at most 4 MiB.
func ReadRange(ctx context.Context, cl *kgo.Client, topic string, partition int32, from, to int64,
	iso kgo.IsolationLevel, fn func(*kgo.Record) error,
) error {
	if from >= to {
		return nil
	}
	leader, topicID, err := partitionLeader(ctx, cl, topic, partition)
	if err != nil {
		return err
	}
	decomp := kgo.DefaultDecompressor()
	for off := from; off < to; {
		rp, err := fetchOnce(ctx, cl.Broker(int(leader)), topic, topicID, partition, off, iso)
		if err != nil {
			return err
		}
		if perr := kerr.ErrorForCode(rp.ErrorCode); perr != nil {
			if errors.Is(perr, kerr.OffsetOutOfRange) && off < rp.LogStartOffset {
				off = rp.LogStartOffset // removed by retention or DeleteRecords
				continue
			}
			return fmt.Errorf("broker: fetch %s/%d at %d: %w", topic, partition, off, perr)
		}
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			KeepControlRecords: true, Offset: off, IsolationLevel: iso, Topic: topic, Partition: partition,
		}, rp, decomp, nil)
		if fp.Err != nil {
			return fmt.Errorf("broker: decode %s/%d at %d: %w", topic, partition, off, fp.Err)
		}
		for _, r := range fp.Records {
			if r.Offset >= to {
				break
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		if next > off {
			off = next
			continue
		}
		end := rp.HighWatermark
		if iso == kgo.ReadCommitted() {
			end = rp.LastStableOffset
		}
		if end <= off && end < to {
			return fmt.Errorf("%w: %s/%d readable to %d, wanted %d", ErrRangeUnreachable, topic, partition, end, to)
		}
		// Nothing returned although the end is ahead: the broker's max wait
		// elapsed on an empty answer; ask again unless ctx is done.
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func partitionLeader(ctx context.Context, cl *kgo.Client, topic string, partition int32) (int32, [16]byte, error) {
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return 0, [16]byte{}, fmt.Errorf("broker: metadata of %s: %w", topic, err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		return 0, [16]byte{}, fmt.Errorf("broker: metadata of %s: %w", topic, d.Err)
	}
	p, ok := d.Partitions[partition]
	if !ok {
		return 0, [16]byte{}, fmt.Errorf("broker: metadata of %s names no partition %d", topic, partition)
	}
	if p.Err != nil {
		return 0, [16]byte{}, fmt.Errorf("broker: metadata of %s/%d: %w", topic, partition, p.Err)
	}
	return p.Leader, d.ID, nil
}

func fetchOnce(ctx context.Context, b *kgo.Broker, topic string, topicID [16]byte, partition int32, off int64,
	iso kgo.IsolationLevel,
) (*kmsg.FetchResponseTopicPartition, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 250
	req.MinBytes = 1
	req.MaxBytes = 4 << 20
	req.IsolationLevel = 0
	if iso == kgo.ReadCommitted() {
		req.IsolationLevel = 1
	}
	req.SessionEpoch = -1 // no fetch session
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, topicID
	rpart := kmsg.NewFetchRequestTopicPartition()
	rpart.Partition = partition
	rpart.FetchOffset = off
	rpart.PartitionMaxBytes = 4 << 20
	rpart.CurrentLeaderEpoch = -1
	rpart.LogStartOffset = -1
	rt.Partitions = append(rt.Partitions, rpart)
	req.Topics = append(req.Topics, rt)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kresp, err := b.Request(rctx, req)
	if err != nil {
		return nil, fmt.Errorf("broker: fetch %s/%d: %w", topic, partition, err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("broker: fetch %s/%d: %w", topic, partition, err)
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if resp.Topics[i].Partitions[j].Partition == partition {
				return &resp.Topics[i].Partitions[j], nil
			}
		}
	}
	return nil, fmt.Errorf("broker: fetch %s/%d: partition missing from the response", topic, partition)
}
