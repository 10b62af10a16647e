package features

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features/tile"
	"github.com/bulwark-ledger/bulwark/internal/ratelimit"
)

// runDetail drains one (tenant, partition) of the velocity detail outbox
// to the detail topic, one token of tasks.velocity_detail.rate_per_partition
// per chunk of up to Config.DetailChunk records, until it is empty. At a
// rate of 0 records wait in PostgreSQL: nothing is lost. A record is
// deleted only after the topic acknowledged it, so a crash in between
// produces it again: delivery is at least once, and each record's key
// (tenant/seq) lets consumers drop the repeat.
func (e *Engine) runDetail(ctx context.Context, k detailKey) {
	part := strconv.Itoa(int(k.Part))
	var measured time.Time
	for ctx.Err() == nil {
		// Lag is counted at most once a second: a backlog of millions of
		// records must not cost a count per chunk.
		if time.Since(measured) >= time.Second {
			measured = time.Now()
			if err := e.detailLag(ctx, k, part); err != nil && ctx.Err() == nil {
				e.cfg.Logger.Warn("features: velocity detail lag", "tenant", k.Tenant, "partition", k.Part, "err", err)
			}
		}
		if !e.waitToken(ctx, ratelimit.Key{Tenant: k.Tenant, Task: control.TaskVelocityDetail, Partition: k.Part}) {
			return
		}
		n, err := e.detailChunk(ctx, k)
		if err != nil {
			if ctx.Err() == nil {
				e.cfg.Logger.Warn("features: velocity detail", "tenant", k.Tenant, "partition", k.Part, "err", err)
			}
			return
		}
		if n == 0 {
			e.m.taskLagEvents.DeleteLabelValues(control.TaskVelocityDetail, k.Tenant, part)
			e.m.taskLagSecs.DeleteLabelValues(control.TaskVelocityDetail, k.Tenant, part)
			return
		}
	}
}

func (e *Engine) detailChunk(ctx context.Context, k detailKey) (int, error) {
	cl, err := e.producer(ctx)
	if err != nil {
		return 0, err
	}
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, `SELECT seq, record FROM feature_detail_outbox WHERE tenant_id = $1 AND part = $2
		ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED`, k.Tenant, k.Part, e.cfg.DetailChunk)
	if err != nil {
		return 0, err
	}
	var seqs []int64
	var recs []*kgo.Record
	for rows.Next() {
		var seq int64
		var rec []byte
		if err := rows.Scan(&seq, &rec); err != nil {
			rows.Close()
			return 0, err
		}
		seqs = append(seqs, seq)
		recs = append(recs, &kgo.Record{Topic: e.cfg.DetailTopic, Key: []byte(k.Tenant + "/" + strconv.FormatInt(seq, 10)), Value: rec})
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(recs) == 0 {
		return 0, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		return 0, fmt.Errorf("produce detail: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM feature_detail_outbox WHERE tenant_id = $1 AND part = $2 AND seq = ANY($3)`,
		k.Tenant, k.Part, seqs); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	e.m.detailSent.Add(float64(len(recs)))
	return len(recs), nil
}

// detailLag sets the lag gauges of one outbox partition.
func (e *Engine) detailLag(ctx context.Context, k detailKey, part string) error {
	var left int64
	var oldest *time.Time
	if err := e.pool.QueryRow(ctx, `SELECT count(*), min(created_at) FROM feature_detail_outbox WHERE tenant_id = $1 AND part = $2`,
		k.Tenant, k.Part).Scan(&left, &oldest); err != nil {
		return err
	}
	e.m.taskLagEvents.WithLabelValues(control.TaskVelocityDetail, k.Tenant, part).Set(float64(left))
	age := 0.0
	if oldest != nil {
		age = time.Since(*oldest).Seconds()
	}
	e.m.taskLagSecs.WithLabelValues(control.TaskVelocityDetail, k.Tenant, part).Set(age)
	return nil
}

// prune drops what retention no longer needs: tile rows past their
// level's retention (with them the entries of retired versions they
// bundle, which no read uses) and tenant events past
// Config.EventRetention plus the largest allowed lateness. Each DELETE is bounded (pruneRows); the rest waits for the
// next round.
func (e *Engine) prune(ctx context.Context) error {
	// A tile no cover reads any more and no late event can land in
	// (tile.Expired): its bucket ended before now - retention - lateness.
	now := e.cfg.Now()
	late := time.Duration(e.lim.Int(control.GlobalTenant, control.KeyFeaturesAllowedLateness)) * time.Second
	for l := tile.Second; l <= tile.Day; l++ {
		end := now.Add(-l.Retention() - late).Unix()
		if _, err := e.pool.Exec(ctx, `DELETE FROM feature_tiles WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM feature_tiles WHERE level = $1 AND bucket <= $2 LIMIT $3))`, int16(l), end-l.Seconds(), pruneRows); err != nil {
			return fmt.Errorf("prune tiles: %w", err)
		}
	}
	keep := e.cfg.EventRetention + 7*24*time.Hour
	if _, err := e.pool.Exec(ctx, `DELETE FROM feature_events WHERE ctid = ANY (ARRAY(
		SELECT ctid FROM feature_events WHERE event_time < $1 LIMIT $2))`, now.Add(-keep), pruneRows); err != nil {
		return fmt.Errorf("prune events: %w", err)
	}
	return nil
}
