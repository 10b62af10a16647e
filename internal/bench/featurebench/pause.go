package featurebench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features"
	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

// Bounds of the pause phase.
const (
	backfillFeature = "card_amount_sum_backfill"
	// progressPoll is how often the backfill's progress is read: the
	// resolution of pause_effective_ms.
	progressPoll = 10 * time.Millisecond
	// backfillStartTimeout bounds the wait for the backfill's first chunk.
	backfillStartTimeout = time.Minute
	// minQuiet: no progress for this long (and for two token intervals)
	// means the task stopped.
	minQuiet = 2 * time.Second
	// pauseTimeout bounds the wait for the task to stop.
	pauseTimeout = 30 * time.Second
	// backfillSeconds is how long the backfill should last at the rate the
	// phase sets, so that it is still running when it is paused.
	backfillSeconds = 4.0
)

// pauseResult is the outcome of the pause phase.
type pauseResult struct {
	effective time.Duration // from the PATCH to the last progress seen
	rate      float64       // the backfill rate before the pause (chunks/s per partition)
	before    int64         // events done when the rate was set to 0
	after     int64         // events done after the task stopped
}

// backfillDone sums the progress of the backfill feature's partitions
// (feature_task_parts, advanced in the transaction of each chunk).
func backfillDone(ctx context.Context, pool *pgxpool.Pool) (done int64, open int, err error) {
	err = pool.QueryRow(ctx, `SELECT coalesce(sum(done_events), 0), count(*) FILTER (WHERE NOT done)
		FROM feature_task_parts WHERE tenant_id = $1 AND name = $2`, benchTenant, backfillFeature).Scan(&done, &open)
	return done, open, err
}

// pause defines a new feature over the whole history (history events in
// the log), so that its backfill runs; once it progresses, sets
// tasks.agg_backfill.rate_per_partition to 0 through the control API and
// measures until the backfill stops progressing; then restores the rate.
func pause(ctx context.Context, c *child, pool *pgxpool.Pool, history int) (pauseResult, error) {
	var res pauseResult
	// A rate at which the backfill lasts about backfillSeconds (one token
	// is one chunk of 500 events per partition), at most the default 10.
	chunks := float64(history) / float64(features.TaskPartitions) / 500
	res.rate = min(10, max(1, chunks/backfillSeconds))
	key := control.TaskRateKey(control.TaskAggBackfill)
	if err := c.settings(ctx, map[string]string{key: strconv.FormatFloat(res.rate, 'f', -1, 64)}); err != nil {
		return res, err
	}
	time.Sleep(time.Second) // every process sees the rate (watcher poll 500 ms)
	def := featureDef{Name: backfillFeature, Source: spec.SourceEvents, Entity: entityField, Aggregation: spec.AggSum,
		Field: "amount", Windows: []string{"1d"}}
	if err := c.call(ctx, http.MethodPost, "/v1/features/definitions", c.key, def, nil); err != nil {
		return res, err
	}
	deadline := time.Now().Add(backfillStartTimeout)
	for {
		done, open, err := backfillDone(ctx, pool)
		if err != nil {
			return res, err
		}
		if open == 0 && done > 0 {
			return res, fmt.Errorf("the backfill of %d events ended before it could be paused", done)
		}
		if done > 0 {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("the backfill did not start within %v", backfillStartTimeout)
		}
		time.Sleep(progressPoll)
	}
	start := time.Now()
	if err := c.settings(ctx, map[string]string{key: "0"}); err != nil {
		return res, err
	}
	last, _, err := backfillDone(ctx, pool)
	if err != nil {
		return res, err
	}
	res.before = last
	lastChange := start
	quiet := max(minQuiet, time.Duration(2*float64(time.Second)/res.rate))
	for time.Since(lastChange) < quiet {
		if time.Since(start) > pauseTimeout {
			return res, fmt.Errorf("the backfill still progressed %v after its rate was set to 0", pauseTimeout)
		}
		time.Sleep(progressPoll)
		done, _, err := backfillDone(ctx, pool)
		if err != nil {
			return res, err
		}
		if done != last {
			last, lastChange = done, time.Now()
		}
	}
	res.effective, res.after = lastChange.Sub(start), last
	// Reopen: the benchmark ends soon, but an operator's pause is undone so.
	return res, c.settings(ctx, map[string]string{key: strconv.Itoa(10)})
}
