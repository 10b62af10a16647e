package relay

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// heartbeats writes a transactional logical message every
// HeartbeatInterval, so the slot's confirmed position advances while the
// captured tables are quiet (otherwise the slot would hold WAL of every
// other write to the server), and refreshes the lag gauges. It returns
// ErrSlotInvalidated when the server has invalidated the slot; other
// errors are logged and retried at the next tick.
func (r *Relay) heartbeats(ctx context.Context) error {
	if r.cfg.HeartbeatInterval < 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(r.cfg.HeartbeatInterval)
	defer t.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if conn == nil || conn.IsClosed() {
			var err error
			if conn, err = connectSQL(ctx, r.cfg.PostgresURL); err != nil {
				r.cfg.Logger.Warn("cdc heartbeat: connect", "err", err)
				conn = nil
				continue
			}
		}
		if _, err := conn.Exec(ctx, "SELECT pg_logical_emit_message(true, $1, $2)", HeartbeatPrefix, r.cfg.Slot); err != nil {
			r.cfg.Logger.Warn("cdc heartbeat", "err", err)
			continue
		}
		r.m.heartbeats.Inc()
		var behind, retained *int64
		var status *string
		err := conn.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8,
			(pg_current_wal_lsn() - restart_lsn)::int8, wal_status
			FROM pg_replication_slots WHERE slot_name = $1`, r.cfg.Slot).Scan(&behind, &retained, &status)
		if err != nil {
			r.cfg.Logger.Warn("cdc lag query", "err", err)
			continue
		}
		if status != nil && *status == "lost" {
			return ErrSlotInvalidated
		}
		if behind != nil {
			r.m.walBytesBehind.Set(float64(*behind))
		}
		if retained != nil {
			r.m.slotRetained.Set(float64(*retained))
		}
	}
}
