-- +goose Up
-- Export jobs (internal/export). A job is queued by the API, claimed by an
-- export worker with a lease, read in chunks by keyset from last_key, and
-- checkpointed after each chunk: the file is written and synced up to
-- file_offset before the row says so, so a worker that takes over a job
-- truncates the file to file_offset and goes on from last_key.
CREATE TABLE export_jobs (
    tenant_id       text NOT NULL REFERENCES tenants(id),
    id              uuid NOT NULL,
    -- SHA-256 of the normalised request: an identical request while the
    -- job is queued or running returns it (export_jobs_dedupe).
    request_digest  bytea NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('entries', 'transactions', 'accounts')),
    account_id      text,
    range_from      timestamptz,
    range_to        timestamptz,
    format          text NOT NULL CHECK (format IN ('csv', 'jsonl')),
    compression     text NOT NULL CHECK (compression IN ('none', 'gzip')),
    -- Every chunk reads rows with created_at <= cutoff: one state of the
    -- ledger across all chunks and all attempts (see internal/export/doc.go).
    cutoff          timestamptz NOT NULL,
    chunk_rows      int NOT NULL CHECK (chunk_rows > 0),
    queue           text NOT NULL CHECK (queue IN ('normal', 'huge')),
    rows_estimated  bigint NOT NULL DEFAULT 0,
    state           text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired')),
    claimed_by      text,
    lease_until     timestamptz,
    attempts        int NOT NULL DEFAULT 0,
    -- Claims since the last checkpoint: the attempt cap applies to these,
    -- so an export that progresses survives any number of worker deaths,
    -- and one stuck on a chunk fails with its reason.
    stalled         int NOT NULL DEFAULT 0,
    -- Checkpoint: after chunks_done chunks, rows_written rows fill the
    -- file up to file_offset bytes; last_key is the keyset position and
    -- hash_state the serialised SHA-256 state of those bytes.
    chunks_done     bigint NOT NULL DEFAULT 0,
    rows_written    bigint NOT NULL DEFAULT 0,
    file_offset     bigint NOT NULL DEFAULT 0,
    last_key        text[],
    hash_state      bytea,
    sha256          text,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX export_jobs_dedupe ON export_jobs (tenant_id, request_digest)
    WHERE state IN ('queued', 'running');
CREATE INDEX export_jobs_ready ON export_jobs (queue, created_at)
    WHERE state IN ('queued', 'running');
CREATE INDEX export_jobs_done ON export_jobs (finished_at) WHERE state = 'succeeded';
CREATE INDEX export_jobs_list ON export_jobs (tenant_id, created_at DESC);

-- One row per queue, locked by a claim so that the running caps (global
-- and per tenant) hold across worker processes.
CREATE TABLE export_queues (name text PRIMARY KEY);
INSERT INTO export_queues VALUES ('normal'), ('huge');

-- How many times each chunk was read: a worker counts the read before it
-- makes it, so a crash between read and checkpoint shows as a second read.
CREATE TABLE export_chunk_reads (
    tenant_id  text NOT NULL,
    job_id     uuid NOT NULL,
    chunk      bigint NOT NULL,
    reads      int NOT NULL,
    PRIMARY KEY (tenant_id, job_id, chunk)
);

-- The key signing download links, created by the first process that
-- needs it: every API replica signs and checks with the same key.
CREATE TABLE export_secrets (
    id      int PRIMARY KEY CHECK (id = 1),
    secret  bytea NOT NULL CHECK (length(secret) >= 32)
);

-- +goose Down
DROP TABLE export_secrets, export_chunk_reads, export_queues, export_jobs;
