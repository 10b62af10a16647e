-- +goose Up
-- Control plane: typed tenant settings, versioned and audited (internal/control).

-- One row: the global settings version. Every change takes this row's lock
-- (UPDATE ... RETURNING), so versions are assigned in commit order and a
-- reader that sees version N has every change up to N.
CREATE TABLE control_version (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    version     bigint NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO control_version (version) VALUES (0);

-- Overrides. tenant_id '*' is the global scope; other ids name a tenant
-- (checked by the store, since '*' is not a row of tenants). Values are the
-- canonical text form of the key's type.
CREATE TABLE control_settings (
    tenant_id   text NOT NULL,
    key         text NOT NULL,
    value       text NOT NULL,
    version     bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- Audit trail: one row per key changed. NULL old/new value means "unset".
CREATE TABLE control_audit (
    id          bigserial PRIMARY KEY,
    version     bigint NOT NULL,
    tenant_id   text NOT NULL,
    key         text NOT NULL,
    old_value   text,
    new_value   text,
    actor       text NOT NULL,   -- authenticated key id
    operator    text NOT NULL DEFAULT '', -- name the client claimed (unverified)
    reason      text NOT NULL DEFAULT '',
    preset      text,            -- "surge" or "surge (revert)" when a preset made the change
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX control_audit_tenant ON control_audit (tenant_id, id);
CREATE INDEX control_audit_key ON control_audit (key, id);

-- Presets currently applied, with the values they replaced (null: unset),
-- so that a revert restores exactly the state before the apply.
CREATE TABLE control_presets_applied (
    tenant_id   text NOT NULL,
    preset      text NOT NULL,
    previous    jsonb NOT NULL,
    version     bigint NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, preset)
);

-- +goose Down
DROP TABLE control_presets_applied, control_audit, control_settings, control_version;
