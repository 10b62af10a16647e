-- +goose Up
-- Tenants and their API keys. Keys are stored as SHA-256 digests only.
CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id),
    digest      bytea NOT NULL UNIQUE,
    -- What the key may claim at the edge (admission control); empty = defaults.
    sources       text[] NOT NULL DEFAULT '{}',
    traffic_types text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Accounts carry their balance as a last-record row: reads never scan
-- history, and the commit pipeline updates each touched account once per
-- batch. Amounts are unsigned 128-bit integers in minor units, kept as
-- numeric(39,0) with range checks so PostgreSQL itself refuses overflow.
CREATE DOMAIN u128 AS numeric(39,0)
    CHECK (VALUE >= 0 AND VALUE <= 340282366920938463463374607431768211455);

CREATE TABLE accounts (
    tenant_id        text NOT NULL REFERENCES tenants(id),
    id               text NOT NULL CHECK (length(id) BETWEEN 1 AND 200),
    asset            text NOT NULL,
    scale            smallint NOT NULL CHECK (scale BETWEEN 0 AND 38),
    rule             text NOT NULL CHECK (rule IN ('none', 'debits_must_not_exceed_credits', 'credits_must_not_exceed_debits')),
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    seq              bigint NOT NULL DEFAULT 0,
    debits_posted    u128 NOT NULL DEFAULT 0,
    credits_posted   u128 NOT NULL DEFAULT 0,
    debits_pending   u128 NOT NULL DEFAULT 0,
    credits_pending  u128 NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- Transactions. kind: posted | pending | post_pending | void_pending | expire_pending.
-- state: for pending transactions pending -> posted | voided | expired; else 'posted'.
CREATE TABLE transactions (
    tenant_id        text NOT NULL,
    id               uuid NOT NULL,
    idempotency_key  text NOT NULL,
    request_digest   bytea NOT NULL,
    kind             text NOT NULL,
    state            text NOT NULL,
    pending_id       uuid,
    expires_at       timestamptz,
    postings         jsonb NOT NULL,
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX transactions_pending_expiry ON transactions (expires_at) WHERE state = 'pending';

-- Entries: the append-only chain per account. seq is contiguous per account
-- from 1, and each entry carries the account's balances after it. Partitioned
-- by time so old months can be archived and detached (bulwark ledger archive).
CREATE TABLE entries (
    tenant_id        text NOT NULL,
    account_id       text NOT NULL,
    seq              bigint NOT NULL,
    transaction_id   uuid NOT NULL,
    posting          int NOT NULL,
    side             char(1) NOT NULL CHECK (side IN ('D', 'C')),
    -- posted: adds amount to the side's posted total; hold: adds to its
    -- pending total; release: takes amount off its pending total.
    effect           text NOT NULL CHECK (effect IN ('posted', 'hold', 'release')),
    amount           numeric(39,0) NOT NULL,
    asset            text NOT NULL,
    debits_posted    numeric(39,0) NOT NULL,
    credits_posted   numeric(39,0) NOT NULL,
    debits_pending   numeric(39,0) NOT NULL,
    credits_pending  numeric(39,0) NOT NULL,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, account_id, seq, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE entries_default PARTITION OF entries DEFAULT;

-- What archiving removed: per account, the last archived entry's seq and
-- balances, so verification and as-of reads stay correct afterwards.
CREATE TABLE entry_archives (
    tenant_id        text NOT NULL,
    account_id       text NOT NULL,
    seq              bigint NOT NULL,
    debits_posted    numeric(39,0) NOT NULL,
    credits_posted   numeric(39,0) NOT NULL,
    debits_pending   numeric(39,0) NOT NULL,
    credits_pending  numeric(39,0) NOT NULL,
    last_entry_at    timestamptz NOT NULL,
    archived_before  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, account_id)
);
CREATE TABLE archived_partitions (
    name        text PRIMARY KEY,
    range_from  timestamptz NOT NULL,
    range_to    timestamptz NOT NULL,
    file        text NOT NULL,
    rows        bigint NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now()
);

-- The async journal: requests answered 202 are durable here before the
-- answer; the applier records the outcome in the same database transaction
-- that applies the request, so an outcome exists exactly when its effect does.
CREATE TABLE journal (
    tenant_id        text NOT NULL,
    id               uuid NOT NULL,
    -- The request's idempotency keys joined: a resent async request finds
    -- its first journal row instead of being journaled twice.
    idempotency_key  text NOT NULL,
    request_digest   bytea NOT NULL,
    request          jsonb NOT NULL,
    state            text NOT NULL CHECK (state IN ('accepted', 'applied', 'rejected')),
    outcome          jsonb,
    attempts         int NOT NULL DEFAULT 0,
    accepted_at      timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX journal_accepted ON journal (accepted_at) WHERE state = 'accepted';

-- +goose Down
DROP TABLE journal, archived_partitions, entry_archives, entries, transactions, accounts, api_keys, tenants;
DROP DOMAIN u128;
