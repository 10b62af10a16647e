-- +goose Up
-- Velocity features (internal/features, docs/features.md).

-- One row per tenant that has features: generation is bumped by every
-- definition change, under the row lock that feature workers take FOR
-- SHARE at the start of each batch. So a change waits for the batches in
-- flight, and every batch that commits after it sees the new version:
-- the boundary between what backfill covers (events with seq <= the
-- version's cutoff_seq) and what the live path applies is exact.
CREATE TABLE feature_tenants (
    tenant_id   text PRIMARY KEY,
    generation  bigint NOT NULL DEFAULT 0
);

-- Definitions, versioned. A change inserts version n+1 as 'building';
-- when its recompute completes one transaction makes it 'active' and the
-- previous one 'retired'. Delete retires every version.
CREATE TABLE feature_versions (
    tenant_id    text NOT NULL,
    name         text NOT NULL,
    version      int NOT NULL,
    source       text NOT NULL,
    entity       text NOT NULL,
    definition   bytea NOT NULL, -- canonical JSON (spec.Definition.Canonical)
    state        text NOT NULL CHECK (state IN ('building', 'active', 'retired')),
    -- backfill covers tenant events with seq <= cutoff_seq, ledger entries
    -- created before cutoff_at; the live path applies the rest.
    cutoff_seq   bigint NOT NULL,
    cutoff_at    timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    built_at     timestamptz,
    retired_at   timestamptz,
    PRIMARY KEY (tenant_id, name, version)
);
CREATE INDEX feature_versions_live ON feature_versions (tenant_id) WHERE state <> 'retired';
CREATE INDEX feature_versions_retired ON feature_versions (retired_at) WHERE state = 'retired';

-- The retained tenant event log: dedup (one row per event id, inserted in
-- the transaction that applies the event) and the history backfill and
-- recompute read. part = hash of the id modulo the task partitions.
CREATE SEQUENCE feature_events_seq;
CREATE TABLE feature_events (
    tenant_id    text NOT NULL,
    id           text NOT NULL,
    seq          bigint NOT NULL DEFAULT nextval('feature_events_seq'),
    part         smallint NOT NULL,
    event_time   timestamptz NOT NULL,
    accepted_at  timestamptz NOT NULL,
    body         bytea NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX feature_events_backfill ON feature_events (tenant_id, part, seq);
CREATE INDEX feature_events_time ON feature_events (event_time);

-- Tiles: per tenant, entity field (card, account, ...), entity, level and
-- bucket, one row bundling the partial aggregates (tile.State) of every
-- feature version on that entity field (internal/features/bundle.go), so
-- that an event writes one row per level whatever the number of features.
CREATE TABLE feature_tiles (
    tenant_id  text NOT NULL,
    field      text NOT NULL,
    entity     text NOT NULL,
    level      smallint NOT NULL,
    bucket     bigint NOT NULL,
    state      bytea NOT NULL,
    PRIMARY KEY (tenant_id, field, entity, level, bucket)
) WITH (fillfactor = 80); -- room on the page: a merge updates in place (HOT), no index churn
CREATE INDEX feature_tiles_age ON feature_tiles (level, bucket);

-- Entities tracked per tenant (features.max_entities).
CREATE TABLE feature_entities (
    tenant_id  text NOT NULL,
    field      text NOT NULL,
    entity     text NOT NULL,
    PRIMARY KEY (tenant_id, field, entity)
);
CREATE TABLE feature_entity_counts (
    tenant_id  text PRIMARY KEY,
    entities   bigint NOT NULL DEFAULT 0
);

-- Positions of the live consumer group, advanced in the transaction that
-- applies the records before them (exactly once across crashes and
-- rebalances; a member whose expected position does not match was fenced).
CREATE TABLE feature_offsets (
    group_id     text NOT NULL,
    topic        text NOT NULL,
    partition    int NOT NULL,
    next_offset  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Backfill and recompute progress: one row per version and partition,
-- advanced with each chunk's tiles in one transaction.
CREATE TABLE feature_task_parts (
    tenant_id      text NOT NULL,
    name           text NOT NULL,
    version        int NOT NULL,
    partition      int NOT NULL,
    task           text NOT NULL,
    cursor_seq     bigint NOT NULL DEFAULT 0,
    cursor_account text NOT NULL DEFAULT '',
    done           boolean NOT NULL DEFAULT false,
    done_events    bigint NOT NULL DEFAULT 0,
    total_events   bigint,
    cursor_time    timestamptz,
    lease_owner    text NOT NULL DEFAULT '',
    lease_until    timestamptz NOT NULL DEFAULT '-infinity',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name, version, partition)
);
CREATE INDEX feature_task_parts_open ON feature_task_parts (tenant_id) WHERE NOT done;

-- Velocity detail records waiting to be produced to bulwark.features.detail.
CREATE SEQUENCE feature_detail_seq;
CREATE TABLE feature_detail_outbox (
    tenant_id   text NOT NULL,
    part        int NOT NULL,
    seq         bigint NOT NULL DEFAULT nextval('feature_detail_seq'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    record      bytea NOT NULL,
    PRIMARY KEY (tenant_id, part, seq)
);

-- +goose Down
DROP TABLE feature_detail_outbox, feature_task_parts, feature_offsets, feature_entity_counts,
    feature_entities, feature_tiles, feature_events, feature_versions, feature_tenants;
DROP SEQUENCE feature_detail_seq, feature_events_seq;
