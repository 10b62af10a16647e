-- +goose Up
-- The SHA-256 of each archive file, written in the same transaction that
-- drops the partition: a later `bulwark ledger archive` run checks the file
-- still matches before reporting the month archived. NULL for months
-- archived before this column existed.
ALTER TABLE archived_partitions ADD COLUMN sha256 text;

-- +goose Down
ALTER TABLE archived_partitions DROP COLUMN sha256;
