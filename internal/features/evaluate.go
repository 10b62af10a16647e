package features

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulwark-ledger/bulwark/internal/control"
	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

// ErrEventLog: the events topic did not acknowledge a produce; the event
// may or may not be recorded (a retry with the same id counts once).
var ErrEventLog = errors.New("features: the event log did not acknowledge")

// maxFutureSkew is how far in the future an evaluated event's time may be
// and still move "now" to it (a client clock slightly ahead).
const maxFutureSkew = time.Minute

// Evaluate answers the values of every feature of every entity of ev, ev
// included (read your own write): the stored tiles merged with ev in
// memory, unless ev's id was applied already or ev is late. With record,
// ev is also produced to the events topic (the live path applies it once
// whatever else sends it). A velocity detail record is queued in the same
// call.
func (e *Engine) Evaluate(ctx context.Context, tenant string, ev spec.Event, record bool, now time.Time) (Evaluation, error) {
	if ev.Time.After(now) && ev.Time.Sub(now) <= maxFutureSkew {
		now = ev.Time
	}
	late := ev.Time.Before(now.Add(-time.Duration(e.lim.Int(tenant, control.KeyFeaturesAllowedLateness)) * time.Second))
	var produced chan error
	if record && !late {
		produced = make(chan error, 1)
		go func() { produced <- e.Produce(ctx, tenant, []spec.Event{ev}, now) }()
	}
	vs, err := e.served(ctx, tenant)
	if err != nil {
		return Evaluation{}, e.wait(produced, err)
	}
	vals, err := e.evaluateRead(ctx, tenant, vs, &ev, late, now)
	if err != nil {
		return Evaluation{}, e.wait(produced, err)
	}
	out := Evaluation{EventID: ev.ID, Late: late, Entities: vals}
	if err := e.queueDetail(ctx, tenant, out, now); err != nil {
		return Evaluation{}, e.wait(produced, err)
	}
	if produced != nil {
		if err := <-produced; err != nil {
			return Evaluation{}, err
		}
		out.Recorded = true
	}
	return out, nil
}

// evaluateRead reads the tiles of ev's entities and whether ev's id was
// applied already in one round trip, then merges ev in unless it was (or
// is late).
func (e *Engine) evaluateRead(ctx context.Context, tenant string, vs []*version, ev *spec.Event, late bool, now time.Time) (_ []EntityValues, err error) {
	ents, targets := evaluateTargets(vs, ev, !late)
	out := make([]EntityValues, len(ents))
	for i, ref := range ents {
		out[i] = EntityValues{EntityType: ref.Type, EntityID: ref.ID, Features: map[string]FeatureValue{}}
	}
	if len(targets) == 0 {
		return out, nil
	}
	q := newTileQuery(tenant, ents, targets, now)
	var b pgx.Batch
	b.Queue(`SELECT EXISTS (SELECT 1 FROM feature_events WHERE tenant_id = $1 AND id = $2)`, tenant, ev.ID)
	b.Queue(tileQuerySQL, q.args...)
	br := e.pool.SendBatch(ctx, &b)
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("evaluate: %w", cerr)
		}
	}()
	var applied bool
	if err := br.QueryRow().Scan(&applied); err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	rows, qerr := br.Query()
	if qerr != nil {
		return nil, fmt.Errorf("evaluate: read tiles: %w", qerr)
	}
	tiles, err := q.scan(rows)
	if err != nil {
		return nil, err
	}
	if applied {
		for i := range targets {
			targets[i].extra = nil // counted in the tiles already
		}
	}
	return mergeTargets(out, targets, tiles, q.covers), nil
}

// wait waits for a concurrent produce to end (it must not outlive the
// request) and returns err.
func (e *Engine) wait(produced chan error, err error) error {
	if produced != nil {
		if perr := <-produced; perr != nil {
			err = errors.Join(err, perr)
		}
	}
	return err
}

// Produce appends events of tenant to the events topic, durably, and
// returns once every one is acknowledged. Their acceptance time (the
// record timestamp, against which lateness is judged) is at.
func (e *Engine) Produce(ctx context.Context, tenant string, evs []spec.Event, at time.Time) error {
	cl, err := e.producer(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrEventLog, err)
	}
	recs := make([]*kgo.Record, len(evs))
	for i := range evs {
		body, err := evs[i].MarshalJSON()
		if err != nil {
			return err
		}
		recs[i] = &kgo.Record{Topic: e.cfg.EventsTopic, Key: []byte(tenant + "/" + evs[i].ID), Value: body, Timestamp: at}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("%w: %w", ErrEventLog, err)
	}
	return nil
}

// detailRecord is what the velocity detail task produces per evaluation.
type detailRecord struct {
	Tenant      string         `json:"tenant"`
	EventID     string         `json:"event_id"`
	EvaluatedAt time.Time      `json:"evaluated_at"`
	Entities    []EntityValues `json:"entities"`
}

// queueDetail inserts the evaluation's detail record into the outbox that
// the velocity detail task drains.
func (e *Engine) queueDetail(ctx context.Context, tenant string, ev Evaluation, now time.Time) error {
	rec, err := json.Marshal(detailRecord{Tenant: tenant, EventID: ev.EventID, EvaluatedAt: now.UTC(), Entities: ev.Entities})
	if err != nil {
		return err
	}
	_, err = e.pool.Exec(ctx, `INSERT INTO feature_detail_outbox (tenant_id, part, record) VALUES ($1, $2, $3)`,
		tenant, partOf(ev.EventID), rec)
	if err != nil {
		return fmt.Errorf("queue velocity detail: %w", err)
	}
	return nil
}
