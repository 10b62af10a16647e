-- +goose Up
-- Tile bundles of busy entities grow past the TOAST threshold (~2 KB:
-- a distinct-count state alone is up to 4 KiB), and every batch of the
-- live path rewrites them. With PostgreSQL's default pglz, compressing
-- them was most of the cost of the first tile UPDATE of a batch (~170 µs
-- per 8 KB row here, lz4 ~40 µs: docs/features.md, "Tile compression").
-- lz4 needs PostgreSQL 14 or later built with it (Debian's and the
-- official images are); elsewhere the column keeps pglz and this
-- migration says so in a notice instead of failing.
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE 'ALTER TABLE feature_tiles ALTER COLUMN state SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'feature_tiles.state keeps pglz compression: %', SQLERRM;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE 'ALTER TABLE feature_tiles ALTER COLUMN state SET COMPRESSION pglz';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'feature_tiles.state compression unchanged: %', SQLERRM;
END
$$;
-- +goose StatementEnd
