package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ledger/bulwark/internal/broker"
	"github.com/bulwark-ledger/bulwark/internal/cdc/relay"
)

// The change stream is assembled here, and only here, for both `bulwark
// serve` (the cdc role) and the `bulwark cdc` commands, so that they agree
// on where the embedded broker lives and what the relay's defaults are.

// OpenBroker returns the seed brokers of the change stream: seeds when
// given, else the embedded broker under dataDir/kafka, started here (and
// repaired, with a warning, after an unclean shutdown) or found running in
// another local process. closeBroker stops a broker started here; call it
// after the relay has stopped.
func OpenBroker(ctx context.Context, seeds []string, dataDir string, log *slog.Logger) (brokers []string, closeBroker func(), err error) {
	if len(seeds) > 0 {
		return seeds, func() {}, nil
	}
	dir := filepath.Join(dataDir, "kafka")
	e, err := broker.StartEmbedded(ctx, dir)
	switch {
	case errors.Is(err, broker.ErrInUse):
		addrs, err := broker.RunningAddrs(dir)
		return addrs, func() {}, err
	case err != nil:
		return nil, nil, err
	}
	log.Info("embedded kafka broker (single node, unreplicated)", "dir", dir, "addrs", e.Addrs())
	if rep := e.Recovery(); rep != nil {
		log.Warn("embedded kafka broker: repaired after an unclean shutdown",
			"partitions", rep.Partitions, "records_scanned", rep.Records,
			"aborted", rep.Aborted, "committed", rep.Committed, "indexes", rep.Indexes,
			"unrepairable", rep.Unrepairable, "repair_ms", rep.Duration.Milliseconds())
	}
	return e.Addrs(), e.Close, nil
}

// RelayConfig completes rc for a process: its PostgreSQL URL, brokers,
// logger and registerer, and the spill directory
// <dataDir>/cdc-spill/<slot> (one per slot, so relays of several slots
// never share one).
func RelayConfig(rc relay.Config, dataDir, pgURL string, brokers []string, log *slog.Logger, reg prometheus.Registerer) relay.Config {
	rc.PostgresURL, rc.Brokers, rc.Logger, rc.Registerer = pgURL, brokers, log, reg
	if rc.SpillDir == "" {
		slot := rc.Slot
		if slot == "" {
			var d relay.Config
			d.EnsureDefaults()
			slot = d.Slot
		}
		rc.SpillDir = filepath.Join(dataDir, "cdc-spill", slot)
	}
	return rc
}

// newRelay builds the change stream relay of the cdc role.
func newRelay(cfg Config, brokers []string, pgURL string, reg prometheus.Registerer) (*relay.Relay, error) {
	rc := RelayConfig(cfg.CDC, cfg.DataDir, pgURL, brokers, cfg.Logger, reg)
	if rc.TracerProvider == nil {
		rc.TracerProvider = cfg.TracerProvider
	}
	r, err := relay.New(rc)
	if err != nil {
		return nil, fmt.Errorf("cdc relay: %w", err)
	}
	return r, nil
}
