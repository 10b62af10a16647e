package server

import (
	"context"

	"github.com/bulwark-ledger/bulwark/internal/export"
)

// addExports adds the export workers: a dedicated pool per queue (normal,
// huge), so that exports never take the connections the ledger needs and
// huge exports never take those of normal ones, each bounded at two
// connections per worker (chunk read and heartbeat) plus one (claims,
// the sweeper).
func (p *process) addExports() error {
	cfg := p.cfg.Exports
	normalWorkers, hugeWorkers := cfg.NormalWorkers, cfg.HugeWorkers
	if normalWorkers == 0 {
		normalWorkers = 2
	}
	if hugeWorkers == 0 {
		hugeWorkers = 2
	}
	ctx := context.Background()
	normal, err := export.OpenPool(ctx, p.url, int32(2*normalWorkers+2), p.cfg.ExportStatementTimeout)
	if err != nil {
		return err
	}
	huge, err := export.OpenPool(ctx, p.url, int32(2*hugeWorkers+1), p.cfg.ExportStatementTimeout)
	if err != nil {
		normal.Close()
		return err
	}
	// Huge exports take one token per chunk from the live setting
	// tasks.export_huge.rate_per_partition (partition 0: per tenant).
	r, err := export.NewRunner(cfg, normal, huge, p.watcher, p.limiter(), p.log, p.reg)
	if err != nil {
		normal.Close()
		huge.Close()
		return err
	}
	p.add(component{name: "export workers", run: r.Run, close: func() { normal.Close(); huge.Close() }})
	return nil
}

// exportAPI returns the export routes of the api role.
func (p *process) exportAPI() (*export.API, error) {
	return export.NewAPI(context.Background(), p.pool, export.NewStore(p.pool, p.watcher), p.cfg.Exports.Dir, p.watcher, p.log)
}
