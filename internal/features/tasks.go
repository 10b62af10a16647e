package features

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features/spec"
	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
)

// Background tasks. Backfill (a new feature) and recompute (a changed
// one) are the same work: build a building version's tiles from the
// retained history its live path does not cover (tenant events with seq
// <= cutoff_seq from feature_events; ledger entries created before
// cutoff_at from the entries table), over the longest window. The history
// is split into TaskPartitions partitions (hash of event id or account);
// each partition advances by chunks of up to Config.ChunkEvents events,
// one token of tasks.<task>.rate_per_partition per chunk, each chunk's
// tiles and the partition's checkpoint in one transaction (resumable
// after SIGKILL, never applied twice). A lease (Config.TaskLease, renewed by
// every chunk) keeps one process per partition so the rate holds across
// processes. When every partition of a version is done, one transaction
// makes it active and retires the previous one.
//
// Velocity detail drains the outbox evaluate fills, per tenant and
// partition, one token per Config.DetailChunk records.

// Bounds of the task runner.
const (
	// maxTaskScan bounds the task partitions one scan returns.
	maxTaskScan = 256
	// tokenWaitMax bounds a task worker's wait for a token; beyond it
	// (a paused or very slow rate) it gives its slot back.
	tokenWaitMax = 2 * time.Second
	// pausedLagEvery: how often the lag of paused detail partitions is
	// counted (no worker runs for them).
	pausedLagEvery = 5 * time.Second
	// janitorEvery: tile and event retention, dropped versions.
	janitorEvery = 30 * time.Second
	// pruneRows bounds one janitor DELETE.
	pruneRows = 10_000
)

type partKey struct {
	Tenant    string
	Name      string
	Version   int32
	Partition int32
	Task      string
}

type detailKey struct {
	Tenant string
	Part   int32
}

// RunTasks runs backfill, recompute, the version switch, velocity detail
// and the janitor until ctx ends, then waits for the chunks in flight.
func (e *Engine) RunTasks(ctx context.Context) error {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		running = make(map[any]struct{}) // guarded by mu: partKey and detailKey
	)
	start := func(k any, run func(context.Context)) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := running[k]; ok || len(running) >= e.cfg.TaskWorkers {
			return
		}
		running[k] = struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx)
			mu.Lock()
			delete(running, k)
			mu.Unlock()
		}()
	}
	defer wg.Wait()
	t := time.NewTicker(e.cfg.TaskPoll)
	defer t.Stop()
	lastJanitor := time.Time{}
	for {
		if err := e.tick(ctx, start); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("features tasks: scan", "err", err)
		}
		if time.Since(lastJanitor) >= janitorEvery {
			lastJanitor = time.Now()
			if err := e.prune(ctx); err != nil && ctx.Err() == nil {
				e.cfg.Logger.Warn("features janitor", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (e *Engine) tick(ctx context.Context, start func(any, func(context.Context))) error {
	if err := e.switchBuilt(ctx); err != nil {
		return err
	}
	rows, err := e.pool.Query(ctx, `SELECT p.tenant_id, p.name, p.version, p.partition, p.task
		FROM feature_task_parts p JOIN feature_versions v USING (tenant_id, name, version)
		WHERE NOT p.done AND v.state = 'building' AND (p.lease_owner = $1 OR p.lease_until < now())
			AND (v.source <> 'ledger' OR v.cutoff_at < now() - $2::interval)
		ORDER BY p.updated_at LIMIT $3`, e.cfg.Owner, e.cfg.LedgerSettle.String(), maxTaskScan)
	if err != nil {
		return err
	}
	parts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (partKey, error) {
		var k partKey
		return k, r.Scan(&k.Tenant, &k.Name, &k.Version, &k.Partition, &k.Task)
	})
	if err != nil {
		return err
	}
	for _, k := range parts {
		// A paused partition takes no worker slot: other tenants' tasks
		// keep theirs. It starts within a scan of its rate rising.
		if !e.paused(k.Tenant, k.Task) {
			start(k, func(ctx context.Context) { e.runPart(ctx, k) })
		}
	}
	// The (tenant, partition) pairs with detail records waiting, by a loose
	// index scan: one probe of the primary key per pair, however many
	// records a paused rate lets pile up.
	rows, err = e.pool.Query(ctx, `WITH RECURSIVE d(t, p) AS (
			(SELECT tenant_id, part FROM feature_detail_outbox ORDER BY tenant_id, part LIMIT 1)
			UNION ALL
			SELECT o.tenant_id, o.part FROM d, LATERAL (SELECT tenant_id, part FROM feature_detail_outbox
				WHERE (tenant_id, part) > (d.t, d.p) ORDER BY tenant_id, part LIMIT 1) o)
		SELECT t, p FROM d LIMIT $1`, maxTaskScan)
	if err != nil {
		return err
	}
	details, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (detailKey, error) {
		var k detailKey
		return k, r.Scan(&k.Tenant, &k.Part)
	})
	if err != nil {
		return err
	}
	refresh := time.Since(e.detailLagAt) >= pausedLagEvery
	if refresh {
		e.detailLagAt = time.Now()
	}
	e.setRates(parts, details)
	for _, k := range details {
		if !e.paused(k.Tenant, control.TaskVelocityDetail) {
			start(k, func(ctx context.Context) { e.runDetail(ctx, k) })
		} else if refresh {
			if err := e.detailLag(ctx, k, strconv.Itoa(int(k.Part))); err != nil {
				return err
			}
		}
	}
	return nil
}

// rate returns tenant's live rate of task (tokens per second per
// partition); ok is false when the settings cannot tell (tests without a
// watcher).
func (e *Engine) rate(tenant, task string) (perSec float64, ok bool) {
	r, ok := e.lim.(interface {
		Float(tenant, key string) float64
	})
	if !ok {
		return 0, false
	}
	return r.Float(tenant, control.TaskRateKey(task)), true
}

// paused reports whether tenant's rate of task is 0 now.
func (e *Engine) paused(tenant, task string) bool {
	r, ok := e.rate(tenant, task)
	return ok && r <= 0
}

// taskRateKey labels one series of the task rate gauge.
type taskRateKey struct{ task, tenant string }

// setRates exports the live rate of every (task, tenant) with work found
// by this scan, and deletes the series of pairs no longer found, so the
// gauge has at most 2 × maxTaskScan series. An alert compares it with
// the task lag: lag growing while the rate is 0 is a forgotten pause.
func (e *Engine) setRates(parts []partKey, details []detailKey) {
	seen := make(map[taskRateKey]bool, len(parts)+len(details))
	for _, k := range parts {
		seen[taskRateKey{k.Task, k.Tenant}] = true
	}
	for _, k := range details {
		seen[taskRateKey{control.TaskVelocityDetail, k.Tenant}] = true
	}
	for k := range seen {
		if r, ok := e.rate(k.tenant, k.task); ok {
			e.m.taskRate.WithLabelValues(k.task, k.tenant).Set(r)
		}
	}
	for k := range e.ratesSet {
		if !seen[k] {
			e.m.taskRate.DeleteLabelValues(k.task, k.tenant)
		}
	}
	e.ratesSet = seen
}

// waitToken waits for a token of key, at most tokenWaitMax: false means
// give the worker slot back (paused, or ctx ended); the next scan starts
// the partition again when its rate allows.
func (e *Engine) waitToken(ctx context.Context, key ratelimit.Key) bool {
	wctx, cancel := context.WithTimeout(ctx, tokenWaitMax)
	defer cancel()
	err := e.rl.Wait(wctx, key)
	if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
		e.cfg.Logger.Warn("features task: rate limiter", "task", key.Task, "tenant", key.Tenant, "partition", key.Partition, "err", err)
	}
	return err == nil
}

// taskLockTimeout bounds a task chunk's wait for a row lock (see chunk).
const taskLockTimeout = 200 * time.Millisecond

var taskLockTimeoutSQL = fmt.Sprintf("SET LOCAL lock_timeout = '%dms'", taskLockTimeout.Milliseconds())

// lockTimedOut reports whether err is PostgreSQL's lock_timeout
// (SQLSTATE 55P03, lock_not_available).
func lockTimedOut(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// errPaused cancels the chunk in flight when its task's rate drops to 0.
var errPaused = errors.New("features task: rate set to 0")

// untilPaused returns a context for one chunk that is cancelled as soon as
// the task's rate for the tenant is 0 (the limiter's change channel wakes
// the watcher within the control plane's push), so a pause stops the
// chunks in flight too, not only the next ones. Cancelling loses nothing: a
// chunk's tiles and its cursor commit in one transaction, so a cancelled
// chunk is rolled back whole and done again after the pause. The watcher
// goroutine ends with the returned context (stop it with the CancelFunc).
func (e *Engine) untilPaused(ctx context.Context, tenant, task string) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancelCause(ctx)
	if e.rl == nil {
		return cctx, func() { cancel(nil) }
	}
	go func() {
		for {
			r, changed, ok := e.rl.Rate(tenant, task)
			if ok && r <= 0 {
				cancel(errPaused)
				return
			}
			select {
			case <-cctx.Done():
				return
			case <-changed:
			}
		}
	}()
	return cctx, func() { cancel(nil) }
}

// runPart advances one task partition chunk by chunk, each after a token.
// A partition's first chunk does not count its history (that count could
// take longer than a pause may): the total is counted after that chunk
// commits, outside any chunk, so progress and ETA appear a chunk later.
func (e *Engine) runPart(ctx context.Context, k partKey) {
	part := strconv.Itoa(int(k.Partition))
	for ctx.Err() == nil {
		if !e.waitToken(ctx, ratelimit.Key{Tenant: k.Tenant, Task: k.Task, Partition: k.Partition}) {
			return
		}
		cctx, stop := e.untilPaused(ctx, k.Tenant, k.Task)
		more, uncounted, err := e.chunk(cctx, k)
		paused := errors.Is(context.Cause(cctx), errPaused)
		stop()
		if err == nil && more && uncounted {
			// Not cancelled by a pause: it changes no progress, and the
			// operator then sees the partition's lag.
			err = e.countTotal(ctx, k)
		}
		if lockTimedOut(err) {
			// Rows the live path holds: rolled back whole, tried again at
			// the next token.
			e.m.taskLockTimeouts.WithLabelValues(k.Task).Inc()
			continue
		}
		if err != nil {
			if ctx.Err() == nil && !paused {
				e.cfg.Logger.Warn("features task: chunk", "task", k.Task, "tenant", k.Tenant, "feature", k.Name,
					"partition", k.Partition, "err", err)
			}
			return
		}
		if !more {
			e.m.taskLagEvents.DeleteLabelValues(k.Task, k.Tenant, part)
			e.m.taskLagSecs.DeleteLabelValues(k.Task, k.Tenant, part)
			return
		}
	}
}

// countTotal sets the total of a partition whose history was not counted
// yet: the events after its cursor plus those done. Only the partition's
// lease holder runs chunks, one after another, so the guard on done_events
// only protects against a lease lost meanwhile.
func (e *Engine) countTotal(ctx context.Context, k partKey) error {
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var st partState
	err = tx.QueryRow(ctx, `SELECT cursor_seq, cursor_account, done_events FROM feature_task_parts
		WHERE tenant_id = $1 AND name = $2 AND version = $3 AND partition = $4 AND NOT done AND total_events IS NULL`,
		k.Tenant, k.Name, k.Version, k.Partition).Scan(&st.cursorSeq, &st.cursorAccount, &st.doneEvents)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("count history: %w", err)
	}
	v, err := buildingVersion(ctx, tx, k)
	if err != nil || v == nil {
		return err
	}
	n, err := e.countHistory(ctx, tx, v, k.Partition, st, historyFrom(v))
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE feature_task_parts SET total_events = $6
		WHERE tenant_id = $1 AND name = $2 AND version = $3 AND partition = $4 AND done_events = $5 AND total_events IS NULL`,
		k.Tenant, k.Name, k.Version, k.Partition, st.doneEvents, n)
	if err != nil {
		return fmt.Errorf("count history: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	e.m.taskLagEvents.WithLabelValues(k.Task, k.Tenant, strconv.Itoa(int(k.Partition))).Set(float64(max(n-st.doneEvents, 0)))
	return nil
}

// buildingVersion returns k's version when it is still building, else nil.
func buildingVersion(ctx context.Context, tx pgx.Tx, k partKey) (*version, error) {
	rows, err := tx.Query(ctx, `SELECT `+versionCols+` FROM feature_versions
		WHERE tenant_id = $1 AND name = $2 AND version = $3`, k.Tenant, k.Name, k.Version)
	if err != nil {
		return nil, err
	}
	vs, err := scanVersions(rows)
	if err != nil {
		return nil, err
	}
	if len(vs) != 1 || vs[0].State != StateBuilding {
		return nil, nil
	}
	return vs[0], nil
}

// historyFrom is where a version's history starts: one coarsest tile (a
// day) more than the longest window, as a cover's tail tile may start that
// much before it.
func historyFrom(v *version) time.Time { return v.CutoffAt.Add(-v.longest - 24*time.Hour) }

// partState is a task partition's checkpoint.
type partState struct {
	cursorSeq     int64
	cursorAccount string
	doneEvents    int64
	total         *int64
}

// beginChunk starts a chunk's transaction: committed asynchronously (see
// asyncCommit), and yielding to the live path: a chunk that waits longer
// than taskLockTimeout for a row lock gives up (and runs again at its
// next token). Tile rows are locked in key order within each pass, but
// the live path's passes (cached, inserted, locked) are not one order, so
// a chunk could deadlock with a live transaction, which PostgreSQL breaks
// only after deadlock_timeout (1 s): a second of freshness lost, and a
// connection held meanwhile.
func (e *Engine) beginChunk(ctx context.Context) (pgx.Tx, error) {
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := asyncCommit(ctx, tx); err != nil {
		_ = tx.Rollback(ctx)
		return nil, err
	}
	if _, err := tx.Exec(ctx, taskLockTimeoutSQL); err != nil {
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("lock timeout: %w", err)
	}
	return tx, nil
}

// chunk applies the partition's next chunk; more is false when the
// partition is done or leased by another process; uncounted is true when
// the partition's total is not counted yet.
func (e *Engine) chunk(ctx context.Context, k partKey) (more, uncounted bool, err error) {
	tx, err := e.beginChunk(ctx)
	if err != nil {
		return false, false, err
	}
	defer tx.Rollback(ctx)
	var st partState
	err = tx.QueryRow(ctx, `UPDATE feature_task_parts SET lease_owner = $5, lease_until = now() + $6 * interval '1 second'
		WHERE tenant_id = $1 AND name = $2 AND version = $3 AND partition = $4 AND NOT done
			AND (lease_owner = $5 OR lease_until < now())
		RETURNING cursor_seq, cursor_account, done_events, total_events`,
		k.Tenant, k.Name, k.Version, k.Partition, e.cfg.Owner, e.cfg.TaskLease.Seconds()).Scan(&st.cursorSeq, &st.cursorAccount, &st.doneEvents, &st.total)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("claim: %w", err)
	}
	v, err := buildingVersion(ctx, tx, k)
	if err != nil {
		return false, false, err
	}
	if v == nil {
		_, err := tx.Exec(ctx, `UPDATE feature_task_parts SET done = true, updated_at = now()
			WHERE tenant_id = $1 AND name = $2 AND version = $3 AND partition = $4`, k.Tenant, k.Name, k.Version, k.Partition)
		if err != nil {
			return false, false, err
		}
		return false, false, tx.Commit(ctx)
	}
	from := historyFrom(v)
	evs, next, err := e.history(ctx, tx, v, k.Partition, st, from)
	if err != nil {
		return false, false, err
	}
	b := newBatch()
	for i := range evs {
		if !evs[i].skip {
			b.add(v, &evs[i].ev)
		}
	}
	refused, err := b.admitEntities(ctx, tx, e.lim, control.KeyFeaturesMaxEntities)
	if err != nil {
		return false, false, err
	}
	b.dropRefused(refused)
	if err := b.writeTiles(ctx, tx); err != nil {
		return false, false, err
	}
	done := len(evs) < e.cfg.ChunkEvents
	var cursorTime *time.Time
	if n := len(evs); n > 0 {
		cursorTime = &evs[n-1].at
	}
	st.doneEvents += int64(len(evs))
	var total *int64
	if st.total != nil || done {
		t := st.doneEvents
		if st.total != nil {
			t = max(*st.total, t)
		}
		total = &t
	}
	if _, err := tx.Exec(ctx, `UPDATE feature_task_parts SET cursor_seq = $5, cursor_account = $6, done_events = $7,
			total_events = $8, done = $9, cursor_time = coalesce($10, cursor_time), updated_at = now()
		WHERE tenant_id = $1 AND name = $2 AND version = $3 AND partition = $4`,
		k.Tenant, k.Name, k.Version, k.Partition, next.cursorSeq, next.cursorAccount, st.doneEvents,
		total, done, cursorTime); err != nil {
		return false, false, err
	}
	// A pause that came while this chunk ran rolls it back rather than
	// letting it land after the operator's request (Commit also fails on a
	// cancelled context; this check only makes that explicit).
	if err := context.Cause(ctx); err != nil {
		return false, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, false, err
	}
	e.m.taskEvents.WithLabelValues(k.Task).Add(float64(len(evs)))
	part := strconv.Itoa(int(k.Partition))
	if total != nil {
		e.m.taskLagEvents.WithLabelValues(k.Task, k.Tenant, part).Set(float64(max(*total-st.doneEvents, 0)))
	}
	if cursorTime != nil && !done {
		e.m.taskLagSecs.WithLabelValues(k.Task, k.Tenant, part).Set(max(v.CutoffAt.Sub(*cursorTime).Seconds(), 0))
	}
	return !done, total == nil, nil
}

// histEvent is one event of a task's history.
type histEvent struct {
	ev   spec.Event
	at   time.Time // acceptance (events) or creation (ledger)
	skip bool
}

// partitionOfAccount is the ledger task partition of an account, in SQL.
var partitionOfAccount = `mod(abs(hashtext(account_id)::bigint), ` + strconv.Itoa(TaskPartitions) + `)`

func (e *Engine) countHistory(ctx context.Context, tx pgx.Tx, v *version, p int32, st partState, from time.Time) (int64, error) {
	var n int64
	var err error
	if v.Def.Source == SourceLedger {
		err = tx.QueryRow(ctx, `SELECT count(*) FROM entries WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
			AND `+partitionOfAccount+` = $4 AND (account_id, seq) > ($5, $6)`,
			v.Tenant, from, v.CutoffAt, p, st.cursorAccount, st.cursorSeq).Scan(&n)
	} else {
		err = tx.QueryRow(ctx, `SELECT count(*) FROM feature_events WHERE tenant_id = $1 AND part = $2
			AND seq > $3 AND seq <= $4 AND event_time >= $5`, v.Tenant, p, st.cursorSeq, v.CutoffSeq, from).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("count history: %w", err)
	}
	return st.doneEvents + n, nil
}

// history reads the partition's next chunk after the cursor and returns
// it with the cursor after it.
func (e *Engine) history(ctx context.Context, tx pgx.Tx, v *version, p int32, st partState, from time.Time) ([]histEvent, partState, error) {
	next := st
	var out []histEvent
	if v.Def.Source == SourceLedger {
		rows, err := tx.Query(ctx, `SELECT `+entryCols+`, seq
			FROM entries WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
			AND `+partitionOfAccount+` = $4 AND (account_id, seq) > ($5, $6)
			ORDER BY account_id, seq LIMIT $7`,
			v.Tenant, from, v.CutoffAt, p, st.cursorAccount, st.cursorSeq, e.cfg.ChunkEvents)
		if err != nil {
			return nil, st, fmt.Errorf("read entries: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var r entryRow
			var seq int64
			if err := r.scan(rows, &seq); err != nil {
				return nil, st, err
			}
			ev, err := r.event()
			if err != nil {
				return nil, st, err
			}
			out = append(out, histEvent{ev: ev, at: r.CreatedAt})
			next.cursorAccount, next.cursorSeq = r.AccountID, seq
		}
		return out, next, rows.Err()
	}
	rows, err := tx.Query(ctx, `SELECT seq, accepted_at, body FROM feature_events
		WHERE tenant_id = $1 AND part = $2 AND seq > $3 AND seq <= $4
		ORDER BY seq LIMIT $5`, v.Tenant, p, st.cursorSeq, v.CutoffSeq, e.cfg.ChunkEvents)
	if err != nil {
		return nil, st, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var at time.Time
		var body []byte
		if err := rows.Scan(&seq, &at, &body); err != nil {
			return nil, st, err
		}
		next.cursorSeq = seq
		ev, err := spec.DecodeEvent(body)
		if err != nil {
			return nil, st, fmt.Errorf("event log row %d: %w", seq, err)
		}
		// An event older than every window counts as processed, not aggregated.
		out = append(out, histEvent{ev: ev, at: at, skip: ev.Time.Before(from)})
	}
	return out, next, rows.Err()
}

// switchBuilt makes every building version whose partitions are all done
// active, retiring the version it replaces, one transaction each.
func (e *Engine) switchBuilt(ctx context.Context) error {
	rows, err := e.pool.Query(ctx, `SELECT tenant_id, name, version FROM feature_versions v WHERE state = 'building'
		AND NOT EXISTS (SELECT 1 FROM feature_task_parts p WHERE (p.tenant_id, p.name, p.version) = (v.tenant_id, v.name, v.version) AND NOT p.done)
		LIMIT 100`)
	if err != nil {
		return err
	}
	ready, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (partKey, error) {
		var k partKey
		return k, r.Scan(&k.Tenant, &k.Name, &k.Version)
	})
	if err != nil {
		return err
	}
	for _, k := range ready {
		if err := e.switchVersion(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) switchVersion(ctx context.Context, k partKey) error {
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := lockTenant(ctx, tx, k.Tenant); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `UPDATE feature_versions v SET state = 'active', built_at = now()
		WHERE (tenant_id, name, version) = ($1, $2, $3) AND state = 'building'
		AND NOT EXISTS (SELECT 1 FROM feature_task_parts p WHERE (p.tenant_id, p.name, p.version) = ($1, $2, $3) AND NOT p.done)`,
		k.Tenant, k.Name, k.Version)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE feature_versions SET state = 'retired', retired_at = now()
		WHERE tenant_id = $1 AND name = $2 AND version < $3 AND state <> 'retired'`, k.Tenant, k.Name, k.Version); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	e.forget(k.Tenant)
	e.cfg.Logger.Info("features: version active", "tenant", k.Tenant, "feature", k.Name, "version", k.Version)
	return nil
}
