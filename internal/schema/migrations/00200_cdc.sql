-- +goose Up
-- The change stream's default publication: the ledger tables. Publishing
-- through the partition root makes changes of every partition of entries
-- appear as changes of entries itself (one topic, one relation id), and
-- keeps working as partitions are added and detached.
CREATE PUBLICATION bulwark_cdc FOR TABLE accounts, transactions, entries, journal
    WITH (publish_via_partition_root = true);

-- +goose Down
DROP PUBLICATION IF EXISTS bulwark_cdc;
