package features

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

// The live path. Feature workers are one Kafka consumer group over the
// events topic (and the relay's entries topic). The group assigns
// partitions; the position of each partition lives in PostgreSQL
// (feature_offsets), is loaded when the partition is assigned
// (AdjustFetchOffsetsFn), and is advanced in the same transaction as the
// tiles and event-log rows of the records before it, with a check that it
// still holds the value this member started from. So:
//
//   - a SIGKILL before the commit leaves position and tiles as they were:
//     the records are fetched and applied again by whoever gets the
//     partition; after it, both moved together: nothing lost, nothing twice;
//   - a member that lost a partition in a rebalance but still applies an
//     old fetch fails the check (another member moved the position), rolls
//     back, and rejoins, reloading positions from PostgreSQL.
//
// Kafka's own committed offsets are never used. Polls block rebalances
// (BlockRebalanceOnPoll) until every batch polled is applied (see
// pipeline), so a partition is revoked between batches, not in the middle
// of one.

type tp struct {
	topic     string
	partition int32
}

// worker is one consumer session's state.
type worker struct {
	e       *Engine
	brokers []string
	mu      sync.Mutex
	// pos is the position each owned partition starts its next batch
	// from, as PostgreSQL holds it; -1: no row yet.
	pos map[tp]int64 // guarded by mu
	// known are tenants whose feature_tenants row exists.
	known map[string]struct{} // guarded by mu
	// entities are those the live path knows are tracked.
	entities *knownEntities
	// writeMu is the write turn: held by the transaction writing tiles
	// (see writeTurn).
	writeMu sync.Mutex
	// rebalanceWanted: franz-go waits for the pipeline to allow a
	// rebalance (set by OnPartitionsCallbackBlocked, cleared by a drain).
	rebalanceWanted atomic.Bool
}

// RunWorker runs the live consumer until ctx ends. Errors (a broker or
// database outage, a fenced batch) end the session; a new one starts
// after a pause, with positions reloaded from PostgreSQL.
func (e *Engine) RunWorker(ctx context.Context) error {
	var brokers []string
	for {
		var err error
		if brokers, err = e.brokers(ctx); err == nil {
			break
		}
		e.cfg.Logger.Warn("features worker: no broker yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	if err := e.EnsureTopics(ctx); err != nil && ctx.Err() == nil {
		e.cfg.Logger.Warn("features: ensure topics", "err", err)
	}
	w := &worker{e: e, brokers: brokers, pos: make(map[tp]int64), known: make(map[string]struct{}),
		entities: newKnownEntities(maxKnownEntities)}
	for ctx.Err() == nil {
		err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		e.cfg.Logger.Warn("features worker: session ended; rejoining", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (w *worker) topics() []string {
	t := []string{w.e.cfg.EventsTopic}
	if w.e.cfg.ledgerEnabled() {
		t = append(t, w.e.cfg.LedgerTopic)
	}
	return t
}

func (w *worker) session(ctx context.Context) error {
	cfg := &w.e.cfg
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.brokers...), kgo.ClientID(memberClientID()),
		kgo.ConsumerGroup(cfg.Group), kgo.ConsumeTopics(w.topics()...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMaxAge(5*time.Second),
		kgo.SessionTimeout(cfg.SessionTimeout), kgo.HeartbeatInterval(cfg.SessionTimeout/4),
		kgo.RebalanceTimeout(rebalanceTimeout(cfg.SessionTimeout)), kgo.AdjustFetchOffsetsFn(w.adjust),
		kgo.OnPartitionsRevoked(w.drop), kgo.OnPartitionsLost(w.drop),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { w.rebalanceWanted.Store(true) }))
	if err != nil {
		return err
	}
	defer cl.Close()
	// A new session may get partitions others wrote meanwhile: the cache's
	// xmin check would catch every such row, this saves the redos.
	w.e.tiles.clear()
	w.rebalanceWanted.Store(false)
	return w.pipeline(ctx, cl)
}

// memberClientID names this process in the consumer group (host and
// pid), so that `kafka-consumer-groups --describe` and the chaos test's
// diagnostics tell which process holds which partitions.
func memberClientID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return fmt.Sprintf("bulwark-features-%s-%d", host, os.Getpid())
}

// rebalanceTimeout is how long the group waits for its members to rejoin
// a rebalance before it drops the ones that did not. A member allows a
// rebalance once its transactions in flight finish (the drain starts at
// franz-go's signal of a blocked rebalance, within a poll wait of 100 ms):
// franz-go's default, 60 s, let one member that missed a
// rebalance (killed, or its join lost) hold every partition of the group
// for a minute.
func rebalanceTimeout(session time.Duration) time.Duration {
	return max(2*session, 10*time.Second)
}

// Bounds of the pipelined live path.
const (
	// pendingPolls bounds the records polled and not yet applied, in polls
	// of Config.BatchRecords: past it the poller waits (back pressure).
	pendingPolls = 3
	// drainEvery is the longest the pipeline goes without a drain: polls
	// block rebalances (BlockRebalanceOnPoll) until every batch polled is
	// applied, so a drain stops polling, lets the transactions finish and
	// allows a rebalance. It drains as soon as franz-go signals a blocked
	// rebalance (OnPartitionsCallbackBlocked) and whenever nothing is
	// pending; this bound is a backstop. A drain every second (the old
	// rule) stalled the live path once a second: records arriving during
	// it waited for two transactions before their own, the tail of the
	// freshness figure.
	drainEvery = 10 * time.Second
	// pollWait bounds a poll while batches are in flight, so that the
	// drain happens on time.
	pollWait = 100 * time.Millisecond
	// maxAppliers bounds the goroutines that may apply transactions; the
	// live setting features.consumer_parallelism (up to this) decides how
	// many do at once.
	maxAppliers = 16
)

// pipeline polls and applies until ctx ends or a batch fails. Polled
// records wait per partition; an applier takes the records waiting of
// every partition no other applier is applying, up to Config.BatchRecords
// (more when one partition's waiting records are more), and applies them
// in one transaction: partitions' positions advance together with the
// tiles and event-log rows of their records. features.consumer_parallelism
// bounds the transactions in flight (default 1; with 2, one prepares
// while the other writes its tiles, and tile writes take turns: see
// writeTurn). Polling does not wait for the transaction in flight. A
// batch that fails cancels the session: later batches are skipped (their
// transactions roll back), and the next session reloads positions from
// PostgreSQL.
func (w *worker) pipeline(ctx context.Context, cl *kgo.Client) error {
	cfg := &w.e.cfg
	sctx, cancel := context.WithCancelCause(ctx)
	p := newPipe(sctx, w, cancel)
	defer p.close()
	lastDrain := time.Now()
	for {
		wait := drainEvery
		if p.pending.Load() > 0 {
			wait = pollWait
		}
		pctx, pcancel := context.WithTimeout(sctx, wait)
		fs := cl.PollRecords(pctx, cfg.BatchRecords)
		pcancel()
		if sctx.Err() != nil {
			p.inflight.Wait()
			cl.AllowRebalance()
			if ctx.Err() != nil {
				return nil
			}
			return context.Cause(sctx)
		}
		fs.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				cfg.Logger.Warn("features worker: fetch", "topic", t, "partition", part, "err", err)
			}
		})
		fs.EachPartition(p.dispatch)
		// Swapped first: a drain for any reason serves the waiting rebalance.
		wanted := w.rebalanceWanted.Swap(false)
		if wanted || p.pending.Load() == 0 || time.Since(lastDrain) >= drainEvery {
			p.inflight.Wait()
			cl.AllowRebalance()
			lastDrain = time.Now()
		}
	}
}

// pipe is one session's pipeline state.
type pipe struct {
	w        *worker
	ctx      context.Context // the session's: cancelled by a failed batch
	cancel   context.CancelCauseFunc
	gate     *gate
	wg       sync.WaitGroup // appliers
	inflight sync.WaitGroup // fetches dispatched and not finished
	pending  atomic.Int64   // the same, as a number

	mu      sync.Mutex
	waiting map[tp][]polled // guarded by mu: polled, not taken, in offset order
	busy    map[tp]bool     // guarded by mu: taken by an applier
	records int             // guarded by mu: records polled and not finished
	wake    chan struct{}   // guarded by mu: closed at every change
}

func newPipe(ctx context.Context, w *worker, cancel context.CancelCauseFunc) *pipe {
	p := &pipe{w: w, ctx: ctx, cancel: cancel, gate: newGate(), waiting: make(map[tp][]polled),
		busy: make(map[tp]bool), wake: make(chan struct{})}
	for range maxAppliers {
		p.wg.Add(1)
		go p.applier()
	}
	return p
}

// changed wakes every goroutine waiting on p.wake; mu is held.
func (p *pipe) changed() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// polled is one fetch of one partition, its records decoded.
type polled struct {
	recs []*kgo.Record
	in   []incoming
}

// dispatch decodes a polled partition's records and queues them (waiting
// while too many records are queued: back pressure on polling). Decoding
// here, on the polling goroutine, overlaps it with the transactions in
// flight rather than adding it to the next one.
func (p *pipe) dispatch(fp kgo.FetchTopicPartition) {
	n := len(fp.Records)
	if fp.Err != nil || n == 0 {
		return
	}
	in := p.w.decode(fp.Topic, fp.Records)
	lag := fp.HighWatermark - fp.Records[n-1].Offset - 1
	p.w.e.m.consumerLag.WithLabelValues(fp.Topic, strconv.Itoa(int(fp.Partition))).Set(float64(max(lag, 0)))
	limit := pendingPolls * p.w.e.cfg.BatchRecords
	p.mu.Lock()
	for p.records > 0 && p.records+n > limit {
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-p.ctx.Done():
			return
		}
		p.mu.Lock()
	}
	if p.ctx.Err() != nil {
		// The session ended: the appliers may have drained and gone, and
		// nothing would account this fetch (the next session refetches it).
		p.mu.Unlock()
		return
	}
	k := tp{fp.Topic, fp.Partition}
	p.waiting[k] = append(p.waiting[k], polled{recs: fp.Records, in: in})
	p.records += n
	p.inflight.Add(1)
	p.pending.Add(1)
	p.changed()
	p.mu.Unlock()
}

// partBatch is the records of one partition taken by an applier, from
// fetches polls consecutive fetches, and what they decoded to.
type partBatch struct {
	k       tp
	recs    []*kgo.Record
	in      []incoming
	fetches int
}

// take waits for records of partitions no other applier has and takes
// them: every such partition's waiting records, whole fetches, until the
// batch holds Config.BatchRecords records (a first fetch is taken
// whatever its size). ok is false when the session ends.
func (p *pipe) take() (batch []partBatch, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		n := 0
		for k, fs := range p.waiting {
			if p.busy[k] || len(fs) == 0 {
				continue
			}
			pb := partBatch{k: k}
			for len(fs) > 0 && (n == 0 || n+len(fs[0].recs) <= p.w.e.cfg.BatchRecords) {
				pb.recs = append(pb.recs, fs[0].recs...)
				pb.in = append(pb.in, fs[0].in...)
				n += len(fs[0].recs)
				pb.fetches++
				fs[0] = polled{} // the backing array outlives it: let its records go
				fs = fs[1:]
			}
			if pb.fetches == 0 {
				continue
			}
			p.waiting[k] = fs
			p.busy[k] = true
			batch = append(batch, pb)
		}
		if len(batch) > 0 {
			return batch, true
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-p.ctx.Done():
		}
		p.mu.Lock()
		if p.ctx.Err() != nil {
			return nil, false
		}
	}
}

// finish releases a taken batch's partitions and accounts its fetches.
func (p *pipe) finish(batch []partBatch) {
	p.mu.Lock()
	fetches := 0
	for _, pb := range batch {
		p.busy[pb.k] = false
		p.records -= len(pb.recs)
		fetches += pb.fetches
	}
	p.changed()
	p.mu.Unlock()
	p.pending.Add(-int64(fetches))
	for range fetches {
		p.inflight.Done()
	}
}

// applier applies taken batches while it holds the gate, until the
// session ends. After a failure (the session is cancelled) batches are
// only accounted, not applied.
func (p *pipe) applier() {
	defer p.wg.Done()
	limit := func() int {
		return int(min(max(p.w.e.lim.Int(control.GlobalTenant, control.KeyFeaturesConsumerParallelism), 1), maxAppliers))
	}
	for {
		if err := p.gate.acquire(p.ctx, limit); err != nil {
			p.drainWaiting()
			return
		}
		batch, ok := p.take()
		if !ok {
			p.gate.release()
			p.drainWaiting()
			return
		}
		if p.ctx.Err() == nil {
			if err := p.w.applyBatch(p.ctx, batch); err != nil {
				p.cancel(err)
			}
		}
		p.gate.release()
		p.finish(batch)
	}
}

// drainWaiting accounts the fetches still waiting once the session ended
// (they are not applied: the next session fetches them again).
func (p *pipe) drainWaiting() {
	p.mu.Lock()
	fetches := 0
	for k, fs := range p.waiting {
		for _, f := range fs {
			p.records -= len(f.recs)
		}
		fetches += len(fs)
		delete(p.waiting, k)
	}
	p.changed()
	p.mu.Unlock()
	p.pending.Add(-int64(fetches))
	for range fetches {
		p.inflight.Done()
	}
}

// close stops the appliers (their transactions in flight roll back) and
// waits for them.
func (p *pipe) close() {
	p.cancel(nil)
	p.wg.Wait()
	p.drainWaiting()
}

// gate bounds the transactions in flight by a live limit.
type gate struct {
	mu   sync.Mutex
	n    int           // guarded by mu
	wake chan struct{} // guarded by mu: closed at each release
}

func newGate() *gate { return &gate{wake: make(chan struct{})} }

// acquire waits until fewer than limit() holders hold the gate. A waiter
// re-reads the limit at each release (there is one while the gate is
// full), so a raised limit applies at once.
func (g *gate) acquire(ctx context.Context, limit func() int) error {
	for {
		g.mu.Lock()
		if g.n < limit() {
			g.n++
			g.mu.Unlock()
			return nil
		}
		wake := g.wake
		g.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	close(g.wake)
	g.wake = make(chan struct{})
}

// adjust replaces the fetch offsets of newly assigned partitions by the
// positions stored in PostgreSQL.
func (w *worker) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	rows, err := w.e.pool.Query(ctx, `SELECT topic, partition, next_offset FROM feature_offsets
		WHERE group_id = $1 AND topic = ANY($2)`, w.e.cfg.Group, w.topics())
	if err != nil {
		return nil, fmt.Errorf("load feature positions: %w", err)
	}
	stored := make(map[tp]int64)
	for rows.Next() {
		var k tp
		var n int64
		if err := rows.Scan(&k.topic, &k.partition, &n); err != nil {
			rows.Close()
			return nil, err
		}
		stored[k] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for topic, parts := range offsets {
		for p := range parts {
			k := tp{topic, p}
			if n, ok := stored[k]; ok {
				parts[p] = kgo.NewOffset().At(n).WithEpoch(-1)
				w.pos[k] = n
			} else {
				parts[p] = kgo.NewOffset().AtStart()
				w.pos[k] = -1
			}
		}
	}
	return offsets, nil
}

func (w *worker) drop(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for topic, ps := range lost {
		for _, p := range ps {
			delete(w.pos, tp{topic, p})
			w.e.m.consumerLag.DeleteLabelValues(topic, strconv.Itoa(int(p)))
		}
	}
}

// errUnplaced: records arrived for a partition without a loaded position.
var errUnplaced = errors.New("features: records of partitions without a loaded position; rejoining")

// errFenced: another member moved the partition's position first.
var errFenced = errors.New("features: partition position moved by another member (rebalance); rejoining")

// maxApplyAttempts bounds the retries of a batch that PostgreSQL aborted
// for a deadlock or a serialization failure (nothing of it was written).
const maxApplyAttempts = 5

// partApply is one partition's part of a transaction: its records not
// applied yet, and the move of its position.
type partApply struct {
	k              tp
	recs           []*kgo.Record
	in             []incoming // recs decoded (those that decode)
	expected, next int64
}

// applyBatch applies the records of several partitions in one
// transaction, retrying a deadlock or serialization failure.
func (w *worker) applyBatch(ctx context.Context, batch []partBatch) error {
	var parts []partApply
	var unplaced []tp
	w.mu.Lock()
	for _, pb := range batch {
		expected, ok := w.pos[pb.k]
		if !ok {
			unplaced = append(unplaced, pb.k)
			continue
		}
		recs, in := pb.recs, pb.in
		if expected >= 0 {
			// Records below the stored position were applied already (a
			// refetch after a rebalance): never twice.
			for len(recs) > 0 && recs[0].Offset < expected {
				recs = recs[1:]
			}
			for len(in) > 0 && in[0].offset < expected {
				in = in[1:]
			}
		}
		if len(recs) > 0 {
			parts = append(parts, partApply{k: pb.k, recs: recs, in: in, expected: expected, next: recs[len(recs)-1].Offset + 1})
		}
	}
	w.mu.Unlock()
	if len(unplaced) > 0 {
		// Records of a partition whose stored position this session has not
		// loaded (or dropped in a revoke or a lost session while the client
		// still fetched it). Skipping them would stall the partition: the
		// client's fetch position moved past them, so they would not come
		// again in this session. The session ends instead; the next one
		// loads every position from PostgreSQL and fetches from there.
		return fmt.Errorf("%w: %v", errUnplaced, unplaced)
	}
	if len(parts) == 0 {
		return nil
	}
	// Positions advance in one order in every transaction (no deadlock
	// between two members that both hold a partition for a moment).
	slices.SortFunc(parts, func(a, b partApply) int {
		return cmp.Or(cmp.Compare(a.k.topic, b.k.topic), cmp.Compare(a.k.partition, b.k.partition))
	})
	start := time.Now()
	var err error
	for attempt := 1; ; attempt++ {
		err = w.applyOnce(ctx, parts)
		if err == nil || attempt >= maxApplyAttempts || (!retryable(err) && !errors.Is(err, errGenerationMoved)) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("apply %d partitions: %w", len(parts), err)
	}
	n := 0
	w.mu.Lock()
	for _, pa := range parts {
		if _, ok := w.pos[pa.k]; ok {
			w.pos[pa.k] = pa.next
		}
		n += len(pa.recs)
	}
	w.mu.Unlock()
	w.e.m.batchRecords.Observe(float64(n))
	w.e.m.commitSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// incoming is one decoded source record.
type incoming struct {
	tenant string
	ev     spec.Event
	ledger bool
	at     time.Time // acceptance (record timestamp)
	raw    []byte    // the record's value: the event as the log stores it (tenant events only)
	offset int64     // the record's
}

func (w *worker) decode(topic string, recs []*kgo.Record) []incoming {
	out := make([]incoming, 0, len(recs))
	for i, r := range recs {
		giveWay(i)
		if topic == w.e.cfg.EventsTopic {
			tenant, _, _ := strings.Cut(string(r.Key), "/")
			ev, err := spec.DecodeEvent(r.Value)
			if err != nil || tenant == "" {
				w.e.cfg.Logger.Error("features worker: undecodable event record skipped", "offset", r.Offset, "err", err)
				continue
			}
			late := time.Duration(w.e.lim.Int(tenant, control.KeyFeaturesAllowedLateness)) * time.Second
			if ev.Time.Before(r.Timestamp.Add(-late)) {
				w.e.m.late.Inc()
				continue
			}
			out = append(out, incoming{tenant: tenant, ev: ev, at: r.Timestamp, raw: r.Value, offset: r.Offset})
			continue
		}
		tenant, ev, ok, err := decodeEntry(r.Value)
		if err != nil {
			w.e.cfg.Logger.Error("features worker: undecodable entries record skipped", "offset", r.Offset, "err", err)
		}
		if ok {
			out = append(out, incoming{tenant: tenant, ev: ev, ledger: true, at: r.Timestamp, offset: r.Offset})
		}
	}
	return out
}

// retryable reports whether PostgreSQL aborted a transaction for a
// deadlock or a serialization failure (nothing of it was written).
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// errGenerationMoved: a definition changed between a batch's entity
// admission and its tile write; the batch is redone (nothing written).
var errGenerationMoved = errors.New("features: definitions changed during the batch; redoing it")

func (w *worker) applyOnce(ctx context.Context, parts []partApply) error {
	var in []incoming
	for _, pa := range parts {
		in = append(in, pa.in...)
	}
	tenants := tenantsOf(in)
	// The entities of the batch are tracked (see admitEntities) in a short
	// transaction of their own, on a second connection, while this one
	// locks the tenants, logs the events and aggregates them: PostgreSQL
	// runs the two on its two cores. The admission commits before the
	// tiles are written (the refused entities' tiles are dropped first), so
	// tracked entities still run ahead of aggregated ones, never behind.
	// No deadlock: the admission holds one connection and waits for
	// nothing this transaction holds. It reads the tenants' generations
	// without locking them (a definition change queued behind this
	// transaction's FOR SHARE would otherwise hold the admission back, and
	// this transaction waits for the admission); the generations are
	// compared before any tile is written, and a change in between redoes
	// the batch.
	// A tenant's generation row is created by the first transaction that
	// meets it, and a second one inserting it waits for the first to end:
	// so while the batch has a tenant this process has not seen committed,
	// the admission runs (and commits) first, alone.
	if !w.allKnown(tenants) {
		var a admission
		a.gens, a.refused, a.err = w.admit(ctx, in, tenants, true)
		if a.err != nil {
			return a.err
		}
		return w.tileTx(ctx, parts, in, tenants, func() admission { return a })
	}
	done := make(chan admission, 1)
	go func() {
		var a admission
		a.gens, a.refused, a.err = w.admit(ctx, in, tenants, false)
		done <- a
	}()
	admitted := sync.OnceValue(func() admission { return <-done })
	defer admitted() // the admission's goroutine ends with this call
	return w.tileTx(ctx, parts, in, tenants, admitted)
}

// allKnown reports whether every tenant's generation row is known to
// exist (markKnown).
func (w *worker) allKnown(tenants []string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range tenants {
		if _, ok := w.known[t]; !ok {
			return false
		}
	}
	return true
}

// admission is what w.admit returns, from its goroutine.
type admission struct {
	gens    map[string]int64
	refused map[entityRef]struct{}
	err     error
}

// tileTx is the tile transaction of applyOnce; admitted returns the
// batch's entity admission (waiting for it), which tileTx needs before it
// writes tiles.
func (w *worker) tileTx(ctx context.Context, parts []partApply, in []incoming, tenants []string,
	admitted func() admission) error {
	tx, err := w.e.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := asyncCommit(ctx, tx); err != nil {
		return err
	}
	versions, gens2, err := w.lockTenants(ctx, tx, tenants, true)
	if err != nil {
		return err
	}
	// The event log's INSERT runs while this goroutine aggregates: every
	// candidate is assumed new (a redelivered event is rare), and the batch
	// is aggregated again from the new ones only when the log says some
	// were applied already. The two share no data, and only the INSERT
	// uses tx meanwhile.
	lg, err := prepareLog(in)
	if err != nil {
		return err
	}
	logged := make(chan logResult, 1)
	go func() {
		n, err := lg.insert(ctx, tx)
		logged <- logResult{n, err}
	}()
	fresh := lg.candidates
	b := aggregate(fresh, versions)
	lr := <-logged
	adm := admitted()
	if lr.err != nil {
		return lr.err
	}
	if adm.err != nil {
		return adm.err
	}
	if !maps.Equal(adm.gens, gens2) {
		return errGenerationMoved
	}
	if lr.inserted != nil {
		fresh = lg.fresh(lr.inserted)
		b = aggregate(fresh, versions)
	}
	refused := b.dropRefused(adm.refused)
	st, written, err := w.writeTurn(ctx, tx, b, parts)
	if err != nil {
		return err
	}
	w.e.m.tileWrites.WithLabelValues("cached").Add(float64(st.hits))
	w.e.m.tileWrites.WithLabelValues("stale").Add(float64(st.stale))
	w.e.m.tileWrites.WithLabelValues("inserted").Add(float64(st.inserted))
	w.e.m.tileWrites.WithLabelValues("locked").Add(float64(len(written) - st.hits - st.inserted))
	w.markKnown(tenants)
	w.e.m.refused.Add(float64(refused))
	for _, x := range fresh {
		src := SourceEvents
		if x.ledger {
			src = SourceLedger
		}
		w.e.m.applied.WithLabelValues(src).Inc()
	}
	w.e.m.deduped.Add(float64(len(in) - len(fresh)))
	return nil
}

// writeTurn writes b's tiles, advances the partitions' positions and
// commits, holding the process's write turn (worker.writeMu) from the
// first tile write until the tile cache holds what the commit wrote.
// Transactions in flight (features.consumer_parallelism > 1) thus decode,
// track entities, log events and aggregate at the same time, but write
// tiles one after the other: every partition touches the hottest
// entities' rows (the events topic is keyed by event id), so two tile
// writes at once would queue on those rows in PostgreSQL and each would
// find the other's cache entries stale. No deadlock: a transaction waiting
// for the turn holds no tile row, and the one holding it waits for no lock
// of another transaction of this process (its event rows and entities are
// written already; positions are of partitions no other transaction has).
func (w *worker) writeTurn(ctx context.Context, tx pgx.Tx, b *batch, parts []partApply) (tileWrites, map[tileKey]cachedTile, error) {
	var st tileWrites
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	written, err := b.write(ctx, tx, w.e.tiles, &st)
	if err != nil {
		return st, nil, err
	}
	for _, pa := range parts {
		if err := w.advance(ctx, tx, pa.k, pa.expected, pa.next); err != nil {
			return st, nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return st, nil, err
	}
	w.e.tiles.putAll(written)
	return st, written, nil
}

// applies reports whether x feeds version v.
func applies(v *version, x *incoming) bool {
	return x.ledger == (v.Def.Source == SourceLedger) && (!x.ledger || !x.ev.Time.Before(v.CutoffAt))
}

// admit tracks the entities of in's events (duplicates included: an
// entity may be tracked ahead of its tiles, never behind) in its own
// transaction and returns the tenants' generations it saw and the entities
// refused by features.max_entities.
func (w *worker) admit(ctx context.Context, in []incoming, tenants []string, lock bool) (map[string]int64, map[entityRef]struct{}, error) {
	tx, err := w.e.pool.Begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback(ctx)
	// Asynchronous commit is safe: a tracking lost in a crash is redone
	// with the batch that needed it (whose commit comes later in the WAL).
	if err := asyncCommit(ctx, tx); err != nil {
		return nil, nil, err
	}
	versions, gens, err := w.lockTenants(ctx, tx, tenants, lock)
	if err != nil {
		return nil, nil, err
	}
	b := newBatch()
	for _, x := range in {
		for _, v := range versions[x.tenant] {
			if applies(v, &x) {
				b.track(v, &x.ev)
			}
		}
	}
	// Entities known to be tracked durably are not probed (knownEntities);
	// the WAL position is read before the probe, so that it is past every
	// admission committed before it.
	mark := w.entities.mark()
	wal, err := readWAL(ctx, tx)
	if err != nil {
		return nil, nil, err
	}
	w.entities.observe(mark, wal)
	w.entities.drop(b.entities)
	refused, err := b.admitEntities(ctx, tx, w.e.lim, control.KeyFeaturesMaxEntities)
	if err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, err
	}
	w.markKnown(tenants)
	seen := make([]entityRef, 0, len(b.entities))
	for r := range b.entities {
		if _, no := refused[r]; !no {
			seen = append(seen, r)
		}
	}
	w.entities.add(seen)
	w.e.m.entitiesKnown.Set(float64(w.entities.size()))
	return gens, refused, nil
}

func tenantsOf(in []incoming) []string {
	seen := make(map[string]struct{})
	var out []string
	for _, x := range in {
		if _, ok := seen[x.tenant]; !ok {
			seen[x.tenant] = struct{}{}
			out = append(out, x.tenant)
		}
	}
	return out
}

// lockTenants takes the tenants' generation rows FOR SHARE (creating the
// missing ones, which a definition change then waits for) and returns
// their live versions, from the cache when the generation did not move.
// Without lock it only reads the generations (and creates nothing).
func (w *worker) lockTenants(ctx context.Context, tx pgx.Tx, tenants []string, lock bool) (map[string][]*version, map[string]int64, error) {
	out := make(map[string][]*version, len(tenants))
	if len(tenants) == 0 {
		return out, nil, nil
	}
	q := `SELECT tenant_id, generation FROM feature_tenants WHERE tenant_id = ANY($1)`
	if !lock {
		return w.tenantVersions(ctx, tx, q, tenants, out)
	}
	var missing []string
	w.mu.Lock()
	for _, t := range tenants {
		if _, ok := w.known[t]; !ok {
			missing = append(missing, t)
		}
	}
	w.mu.Unlock()
	if len(missing) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO feature_tenants (tenant_id) SELECT unnest($1::text[]) ORDER BY 1
			ON CONFLICT DO NOTHING`, missing); err != nil {
			return nil, nil, fmt.Errorf("feature tenants: %w", err)
		}
	}
	return w.tenantVersions(ctx, tx, q+` ORDER BY tenant_id COLLATE "C" FOR SHARE`, tenants, out)
}

// tenantVersions runs q (tenant, generation rows) and fills out with the
// live versions of each tenant found, from the cache when the generation
// did not move.
func (w *worker) tenantVersions(ctx context.Context, tx pgx.Tx, q string, tenants []string,
	out map[string][]*version) (map[string][]*version, map[string]int64, error) {
	rows, err := tx.Query(ctx, q, tenants)
	if err != nil {
		return nil, nil, fmt.Errorf("lock feature tenants: %w", err)
	}
	gens := make(map[string]int64, len(tenants))
	for rows.Next() {
		var t string
		var g int64
		if err := rows.Scan(&t, &g); err != nil {
			rows.Close()
			return nil, nil, err
		}
		gens[t] = g
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	var stale []string
	for t, g := range gens {
		if c, ok := w.e.cache.get(t); ok && c.gen == g {
			out[t] = c.versions
		} else {
			stale = append(stale, t)
		}
	}
	if len(stale) > 0 {
		vs, err := liveVersions(ctx, tx, stale)
		if err != nil {
			return nil, nil, err
		}
		for _, v := range vs {
			out[v.Tenant] = append(out[v.Tenant], v)
		}
		for _, t := range stale {
			w.e.cache.put(t, cachedTenant{gen: gens[t], versions: out[t]})
		}
	}
	return out, gens, nil
}

// markKnown records tenants whose generation row exists (committed).
func (w *worker) markKnown(tenants []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.known) > maxCachedTenants {
		clear(w.known)
	}
	for _, t := range tenants {
		w.known[t] = struct{}{}
	}
}

// partOf is the task partition of an event id (or ledger account).
func partOf(s string) int16 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return int16(h.Sum32() % TaskPartitions)
}

// aggregate adds the events of in to a new batch, each to the versions it
// feeds. in must not move while the batch lives (batch.add memoizes by
// event address).
func aggregate(in []incoming, versions map[string][]*version) *batch {
	b := newBatch()
	for i := range in {
		giveWay(i)
		x := &in[i]
		for _, v := range versions[x.tenant] {
			if applies(v, x) {
				b.add(v, &x.ev)
			}
		}
	}
	return b
}

// eventLog is a batch's append to the event log: the candidates (the
// ledger's entries, and the first of each tenant event id in the batch)
// and the log rows of the tenant events among them.
type eventLog struct {
	candidates []incoming
	tn, ids    []string
	parts      []int16
	times, at  []time.Time
	bodies     [][]byte
}

type logKey struct{ t, id string }

type logResult struct {
	inserted map[logKey]struct{} // nil: every row was new
	err      error
}

// prepareLog lists what a batch appends to the event log. A tenant event
// is logged as its record carried it (the bytes the worker decoded), so
// the log keeps what was accepted and the live path does not encode it
// again.
func prepareLog(in []incoming) (*eventLog, error) {
	lg := &eventLog{candidates: make([]incoming, 0, len(in))}
	logged := make(map[logKey]struct{}, len(in)) // the tenant events among the candidates
	for i, x := range in {
		giveWay(i)
		if !x.ledger {
			k := logKey{x.tenant, x.ev.ID}
			if _, dup := logged[k]; dup {
				continue // the same id twice in the batch counts once
			}
			body := x.raw
			if body == nil {
				var err error
				if body, err = x.ev.MarshalJSON(); err != nil {
					return nil, err
				}
			}
			logged[k] = struct{}{}
			lg.tn, lg.ids, lg.parts = append(lg.tn, x.tenant), append(lg.ids, x.ev.ID), append(lg.parts, partOf(x.ev.ID))
			lg.times, lg.at, lg.bodies = append(lg.times, x.ev.Time), append(lg.at, x.at), append(lg.bodies, body)
		}
		lg.candidates = append(lg.candidates, x)
	}
	return lg, nil
}

// insert appends the tenant events to the event log and returns the keys
// of those the log did not hold yet, or nil when that is all of them (the
// same id twice, in this batch or ever, counts once).
func (lg *eventLog) insert(ctx context.Context, tx pgx.Tx) (map[logKey]struct{}, error) {
	if len(lg.ids) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `INSERT INTO feature_events (tenant_id, id, part, event_time, accepted_at, body)
		SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::timestamptz[], $5::timestamptz[], $6::bytea[])
			AS u(t, id, part, et, at, body)
		ORDER BY t COLLATE "C", id COLLATE "C"
		ON CONFLICT DO NOTHING RETURNING tenant_id, id`, lg.tn, lg.ids, lg.parts, lg.times, lg.at, lg.bodies)
	if err != nil {
		return nil, fmt.Errorf("log events: %w", err)
	}
	defer rows.Close()
	inserted := make(map[logKey]struct{}, len(lg.ids))
	for rows.Next() {
		var k logKey
		if err := rows.Scan(&k.t, &k.id); err != nil {
			return nil, err
		}
		inserted[k] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("log events: %w", err)
	}
	if len(inserted) == len(lg.ids) {
		return nil, nil
	}
	return inserted, nil
}

// fresh returns the candidates that are new: the ledger's entries and the
// tenant events in inserted.
func (lg *eventLog) fresh(inserted map[logKey]struct{}) []incoming {
	out := make([]incoming, 0, len(inserted))
	for _, x := range lg.candidates {
		if !x.ledger {
			if _, ok := inserted[logKey{x.tenant, x.ev.ID}]; !ok {
				continue
			}
		}
		out = append(out, x)
	}
	return out
}

// advance moves the partition's stored position from expected to next, or
// fails with errFenced when it no longer holds expected.
func (w *worker) advance(ctx context.Context, tx pgx.Tx, k tp, expected, next int64) error {
	var tag pgconn.CommandTag
	var err error
	if expected < 0 {
		tag, err = tx.Exec(ctx, `INSERT INTO feature_offsets (group_id, topic, partition, next_offset)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, w.e.cfg.Group, k.topic, k.partition, next)
	} else {
		tag, err = tx.Exec(ctx, `UPDATE feature_offsets SET next_offset = $5, updated_at = now()
			WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4`,
			w.e.cfg.Group, k.topic, k.partition, expected, next)
	}
	if err != nil {
		return fmt.Errorf("advance position: %w", err)
	}
	if tag.RowsAffected() != 1 {
		w.e.m.fenced.Inc()
		return errFenced
	}
	return nil
}
