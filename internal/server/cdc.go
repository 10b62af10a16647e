package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/cdc/relay"
)

// newRelay builds the change stream relay of the cdc role: the configured
// brokers, or the embedded broker under DataDir/kafka (started here, or the
// one another local process already runs there).
func newRelay(ctx context.Context, cfg Config, pgURL string, reg prometheus.Registerer) (*relay.Relay, func(), error) {
	brokers, closeBroker := cfg.KafkaBrokers, func() {}
	if len(brokers) == 0 {
		dir := filepath.Join(cfg.DataDir, "kafka")
		e, err := broker.StartEmbedded(ctx, dir)
		switch {
		case errors.Is(err, broker.ErrInUse):
			if brokers, err = broker.RunningAddrs(dir); err != nil {
				return nil, nil, err
			}
		case err != nil:
			return nil, nil, err
		default:
			brokers, closeBroker = e.Addrs(), e.Close
			cfg.Logger.Info("embedded kafka broker (single node, unreplicated)", "dir", dir, "addrs", brokers)
			if rep := e.Recovery(); rep != nil {
				cfg.Logger.Warn("embedded kafka broker: repaired after an unclean shutdown",
					"partitions", rep.Partitions, "records_scanned", rep.Records,
					"aborted", rep.Aborted, "committed", rep.Committed, "indexes", rep.Indexes,
					"unrepairable", rep.Unrepairable, "repair_ms", rep.Duration.Milliseconds())
			}
		}
	}
	rc := cfg.CDC
	rc.PostgresURL, rc.Brokers, rc.Logger, rc.Registerer = pgURL, brokers, cfg.Logger, reg
	if rc.SpillDir == "" {
		rc.SpillDir = filepath.Join(cfg.DataDir, "cdc-spill")
	}
	r, err := relay.New(rc)
	if err != nil {
		closeBroker()
		return nil, nil, fmt.Errorf("cdc relay: %w", err)
	}
	return r, closeBroker, nil
}
