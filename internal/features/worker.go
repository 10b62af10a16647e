package features

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
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
	w := &worker{e: e, brokers: brokers, pos: make(map[tp]int64), known: make(map[string]struct{})}
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.brokers...), kgo.ConsumerGroup(cfg.Group), kgo.ConsumeTopics(w.topics()...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMaxAge(5*time.Second),
		kgo.SessionTimeout(cfg.SessionTimeout), kgo.HeartbeatInterval(cfg.SessionTimeout/4), kgo.AdjustFetchOffsetsFn(w.adjust),
		kgo.OnPartitionsRevoked(w.drop), kgo.OnPartitionsLost(w.drop))
	if err != nil {
		return err
	}
	defer cl.Close()
	// A new session may get partitions others wrote meanwhile: the cache's
	// xmin check would catch every such row, this saves the redos.
	w.e.tiles.clear()
	return w.pipeline(ctx, cl)
}

// Bounds of the pipelined live path.
const (
	// laneDepth bounds the polled batches waiting per partition: records
	// held are at most (laneDepth + 1) polls of Config.BatchRecords records
	// per partition, and a backlog makes the next transaction of a
	// partition take the batches waiting (up to Config.BatchRecords
	// records: larger batches, fewer transactions, exactly when the live
	// path is behind).
	laneDepth = 2
	// drainEvery bounds how long a rebalance waits: polls block rebalances
	// (BlockRebalanceOnPoll) until every batch polled is applied, so at
	// least that often the pipeline stops polling, lets its transactions
	// finish and allows the rebalance.
	drainEvery = time.Second
	// pollWait bounds a poll while batches are in flight, so that the
	// drain happens on time.
	pollWait = 100 * time.Millisecond
)

// pipeline polls and applies until ctx ends or a batch fails. Each
// partition has its own lane (a goroutine applying its batches in offset
// order, one transaction at a time); features.consumer_parallelism bounds
// the transactions in flight across lanes. Polling does not wait for the
// previous poll's batches (no barrier between polls): a slow partition
// delays only itself, and the others keep their transactions going. A
// batch that fails cancels the session: later batches of every lane are
// skipped (their transactions roll back), and the next session reloads
// positions from PostgreSQL.
func (w *worker) pipeline(ctx context.Context, cl *kgo.Client) error {
	cfg := &w.e.cfg
	sctx, cancel := context.WithCancelCause(ctx)
	p := &pipe{w: w, ctx: sctx, cancel: cancel, gate: newGate(), lanes: make(map[tp]chan kgo.FetchTopicPartition)}
	defer p.close()
	lastDrain := time.Now()
	for {
		pctx, pcancel := context.WithTimeout(sctx, drainEvery)
		if p.pending.Load() > 0 {
			pctx, pcancel = context.WithTimeout(sctx, pollWait)
		}
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
				cfg.Logger.Debug("features worker: fetch", "topic", t, "partition", part, "err", err)
			}
		})
		fs.EachPartition(p.dispatch)
		if p.pending.Load() == 0 || time.Since(lastDrain) >= drainEvery {
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
	lanes    map[tp]chan kgo.FetchTopicPartition // owned by the polling goroutine
	wg       sync.WaitGroup                      // lanes
	inflight sync.WaitGroup                      // batches dispatched and not finished
	pending  atomic.Int64                        // the same, as a number
}

// dispatch hands a polled partition's records to its lane (waiting while
// the lane is full: back pressure on polling).
func (p *pipe) dispatch(fp kgo.FetchTopicPartition) {
	n := len(fp.Records)
	if fp.Err != nil || n == 0 {
		return
	}
	lag := fp.HighWatermark - fp.Records[n-1].Offset - 1
	p.w.e.m.consumerLag.WithLabelValues(fp.Topic, strconv.Itoa(int(fp.Partition))).Set(float64(max(lag, 0)))
	k := tp{fp.Topic, fp.Partition}
	ch, ok := p.lanes[k]
	if !ok {
		ch = make(chan kgo.FetchTopicPartition, laneDepth)
		p.lanes[k] = ch
		p.wg.Add(1)
		go p.lane(ch)
	}
	p.inflight.Add(1)
	p.pending.Add(1)
	select {
	case ch <- fp:
	case <-p.ctx.Done():
		p.pending.Add(-1)
		p.inflight.Done()
	}
}

// lane applies one partition's batches in order until its channel closes.
func (p *pipe) lane(ch <-chan kgo.FetchTopicPartition) {
	defer p.wg.Done()
	limit := func() int {
		return int(max(p.w.e.lim.Int(control.GlobalTenant, control.KeyFeaturesConsumerParallelism), 1))
	}
	for fp := range ch {
		n := 1
		// Take the batches waiting (a backlog) into one transaction, up to
		// Config.BatchRecords records: a transaction's memory (its tile
		// states) and lock time grow with its records.
		for len(ch) > 0 && len(fp.Records) < p.w.e.cfg.BatchRecords {
			q := <-ch
			fp.Records = append(slices.Clip(fp.Records), q.Records...)
			n++
		}
		if p.ctx.Err() == nil {
			if err := p.gate.acquire(p.ctx, limit); err == nil {
				if err := p.w.applyPartition(p.ctx, fp); err != nil {
					p.cancel(err)
				}
				p.gate.release()
			}
		}
		p.pending.Add(-int64(n))
		for range n {
			p.inflight.Done()
		}
	}
}

// close stops the lanes (their transactions in flight roll back) and waits
// for them.
func (p *pipe) close() {
	p.cancel(nil)
	for _, ch := range p.lanes {
		close(ch)
	}
	p.wg.Wait()
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

// errFenced: another member moved the partition's position first.
var errFenced = errors.New("features: partition position moved by another member (rebalance); rejoining")

// maxApplyAttempts bounds the retries of a batch that PostgreSQL aborted
// for a deadlock or a serialization failure (nothing of it was written).
const maxApplyAttempts = 5

func (w *worker) applyPartition(ctx context.Context, p kgo.FetchTopicPartition) error {
	k := tp{p.Topic, p.Partition}
	w.mu.Lock()
	expected, ok := w.pos[k]
	w.mu.Unlock()
	if !ok {
		return nil // revoked meanwhile; its next owner applies these records
	}
	recs := p.Records
	if expected >= 0 {
		// Records below the stored position were applied already (a refetch
		// after a rebalance): never twice.
		for len(recs) > 0 && recs[0].Offset < expected {
			recs = recs[1:]
		}
		if len(recs) == 0 {
			return nil
		}
	}
	next := recs[len(recs)-1].Offset + 1
	start := time.Now()
	var err error
	for attempt := 1; ; attempt++ {
		err = w.applyOnce(ctx, k, recs, expected, next)
		if err == nil || attempt >= maxApplyAttempts || (!retryable(err) && !errors.Is(err, errGenerationMoved)) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("apply %s/%d: %w", k.topic, k.partition, err)
	}
	w.mu.Lock()
	if _, ok := w.pos[k]; ok {
		w.pos[k] = next
	}
	w.mu.Unlock()
	w.e.m.batchRecords.Observe(float64(len(recs)))
	w.e.m.commitSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// incoming is one decoded source record.
type incoming struct {
	tenant string
	ev     spec.Event
	ledger bool
	at     time.Time // acceptance (record timestamp)
}

func (w *worker) decode(topic string, recs []*kgo.Record) []incoming {
	out := make([]incoming, 0, len(recs))
	for _, r := range recs {
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
			out = append(out, incoming{tenant: tenant, ev: ev, at: r.Timestamp})
			continue
		}
		tenant, ev, ok, err := decodeEntry(r.Value)
		if err != nil {
			w.e.cfg.Logger.Error("features worker: undecodable entries record skipped", "offset", r.Offset, "err", err)
		}
		if ok {
			out = append(out, incoming{tenant: tenant, ev: ev, ledger: true, at: r.Timestamp})
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

func (w *worker) applyOnce(ctx context.Context, k tp, recs []*kgo.Record, expected, next int64) error {
	in := w.decode(k.topic, recs)
	tenants := tenantsOf(in)
	// Phase 1, its own short transaction: track the entities of the batch
	// (see admitEntities), before the tile transaction takes a connection
	// (one connection at a time: lanes never wait for a second one).
	gens, refusedSet, err := w.admit(ctx, in, tenants)
	if err != nil {
		return err
	}
	tx, err := w.e.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := asyncCommit(ctx, tx); err != nil {
		return err
	}
	versions, gens2, err := w.lockTenants(ctx, tx, tenants)
	if err != nil {
		return err
	}
	if !maps.Equal(gens, gens2) {
		return errGenerationMoved
	}
	fresh, err := w.logEvents(ctx, tx, in)
	if err != nil {
		return err
	}
	b := newBatch()
	for _, x := range fresh {
		for _, v := range versions[x.tenant] {
			if applies(v, &x) {
				b.add(v, &x.ev)
			}
		}
	}
	refused := b.dropRefused(refusedSet)
	var st tileWrites
	written, err := b.write(ctx, tx, w.e.tiles, &st)
	if err != nil {
		return err
	}
	if err := w.advance(ctx, tx, k, expected, next); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	w.e.tiles.putAll(written)
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

// applies reports whether x feeds version v.
func applies(v *version, x *incoming) bool {
	return x.ledger == (v.Def.Source == SourceLedger) && (!x.ledger || !x.ev.Time.Before(v.CutoffAt))
}

// admit tracks the entities of in's events (duplicates included: an
// entity may be tracked ahead of its tiles, never behind) in its own
// transaction and returns the tenants' generations it saw and the entities
// refused by features.max_entities.
func (w *worker) admit(ctx context.Context, in []incoming, tenants []string) (map[string]int64, map[entityRef]struct{}, error) {
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
	versions, gens, err := w.lockTenants(ctx, tx, tenants)
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
	refused, err := b.admitEntities(ctx, tx, w.e.lim, control.KeyFeaturesMaxEntities)
	if err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, err
	}
	w.markKnown(tenants)
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
func (w *worker) lockTenants(ctx context.Context, tx pgx.Tx, tenants []string) (map[string][]*version, map[string]int64, error) {
	out := make(map[string][]*version, len(tenants))
	if len(tenants) == 0 {
		return out, nil, nil
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
	rows, err := tx.Query(ctx, `SELECT tenant_id, generation FROM feature_tenants
		WHERE tenant_id = ANY($1) ORDER BY tenant_id COLLATE "C" FOR SHARE`, tenants)
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

// logEvents appends the tenant events of in to the event log and returns
// what is new: the ledger's entries, and the tenant events whose id the
// log did not hold (the same id twice, in this batch or ever, counts once).
func (w *worker) logEvents(ctx context.Context, tx pgx.Tx, in []incoming) ([]incoming, error) {
	var fresh []incoming
	type key struct{ t, id string }
	first := make(map[key]int)
	var tn, ids []string
	var parts []int16
	var times, accepted []time.Time
	var bodies [][]byte
	for i, x := range in {
		if x.ledger {
			fresh = append(fresh, x)
			continue
		}
		k := key{x.tenant, x.ev.ID}
		if _, dup := first[k]; dup {
			continue
		}
		first[k] = i
		body, err := x.ev.MarshalJSON()
		if err != nil {
			return nil, err
		}
		tn, ids, parts = append(tn, x.tenant), append(ids, x.ev.ID), append(parts, partOf(x.ev.ID))
		times, accepted, bodies = append(times, x.ev.Time), append(accepted, x.at), append(bodies, body)
	}
	if len(ids) == 0 {
		return fresh, nil
	}
	rows, err := tx.Query(ctx, `INSERT INTO feature_events (tenant_id, id, part, event_time, accepted_at, body)
		SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::timestamptz[], $5::timestamptz[], $6::bytea[])
			AS u(t, id, part, et, at, body)
		ORDER BY t COLLATE "C", id COLLATE "C"
		ON CONFLICT DO NOTHING RETURNING tenant_id, id`, tn, ids, parts, times, accepted, bodies)
	if err != nil {
		return nil, fmt.Errorf("log events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.t, &k.id); err != nil {
			return nil, err
		}
		fresh = append(fresh, in[first[k]])
	}
	return fresh, rows.Err()
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
