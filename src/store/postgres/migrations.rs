//! The PostgreSQL schema, one migration per step, applied in order once.
//! (Same steps as SQLite's list; the dialects differ in types, identity
//! columns and trigger syntax.)

/// Schema migrations, applied in order, one to one with SQLite's (version `n`
/// is the same schema on both backends); `schema_migrations` records which
/// have run. Never edit a released migration: append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE cas (
    id                TEXT PRIMARY KEY,
    common_name       TEXT NOT NULL,
    issuer_id         TEXT,
    status            TEXT NOT NULL,
    doc               TEXT NOT NULL,
    cert              BYTEA,
    chain             BYTEA,
    csr               BYTEA,
    sealed_key        BYTEA,
    revoked_at        BIGINT,
    revocation_reason BIGINT,
    deleted_at        BIGINT,
    row_version       BIGINT NOT NULL,
    crl_number        BIGINT NOT NULL DEFAULT 0,
    created_order     BIGINT NOT NULL
);
-- COLLATE "C": lower() folds ASCII only, exactly like SQLite's lower(), so
-- the same names collide on both backends whatever the database's locale.
CREATE UNIQUE INDEX cas_live_common_name ON cas (lower(common_name COLLATE "C")) WHERE deleted_at IS NULL;
CREATE INDEX cas_issuer ON cas (issuer_id);
CREATE TABLE leaves (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    ca_id             TEXT NOT NULL REFERENCES cas (id),
    serial            TEXT NOT NULL,
    not_after         BIGINT NOT NULL,
    revoked_at        BIGINT,
    revocation_reason BIGINT,
    doc               TEXT NOT NULL,
    der               BYTEA NOT NULL,
    UNIQUE (ca_id, serial)
);
CREATE INDEX leaves_by_ca ON leaves (ca_id, revoked_at, seq);
CREATE INDEX leaves_by_serial ON leaves (serial);
CREATE TABLE changes (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    ca_id   TEXT NOT NULL,
    leaf_id TEXT
);
"#,
    r#"
ALTER TABLE leaves ADD COLUMN ocsp_sha1 BYTEA;
ALTER TABLE leaves ADD COLUMN ocsp_sha256 BYTEA;
ALTER TABLE leaves ADD COLUMN ocsp_this_update BIGINT;
ALTER TABLE leaves ADD COLUMN ocsp_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX leaves_ocsp_due ON leaves (ocsp_this_update);
CREATE INDEX leaves_ocsp_seq ON leaves (ocsp_seq);
ALTER TABLE cas ADD COLUMN ocsp_sha1 BYTEA;
ALTER TABLE cas ADD COLUMN ocsp_sha256 BYTEA;
ALTER TABLE cas ADD COLUMN ocsp_this_update BIGINT;
CREATE TABLE crls (
    ca_id       TEXT PRIMARY KEY,
    crl_number  BIGINT NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    der         BYTEA NOT NULL
);
"#,
    r#"
CREATE TABLE ocsp_delegates (
    ca_id      TEXT PRIMARY KEY,
    cert       BYTEA NOT NULL,
    sealed_key BYTEA NOT NULL,
    not_after  BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    permissions TEXT NOT NULL
);
CREATE TABLE role_assignments (
    principal  TEXT NOT NULL,
    role       TEXT NOT NULL,
    scope_tags TEXT NOT NULL,
    PRIMARY KEY (principal, role)
);
"#,
    r#"
CREATE TABLE audit_events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    activity    TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    result      TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_by_activity ON audit_events (activity, seq);
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
-- Row triggers do not fire on TRUNCATE, which SQLite does not have.
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
"#,
    // Paging a CA's leaves in issuance order without sorting the whole CA.
    r#"
CREATE INDEX leaves_by_ca_seq ON leaves (ca_id, seq);
"#,
    // Audit events carry the scope tags of what they concern (read by scope);
    // API tokens get ids and a deny list.
    r#"
ALTER TABLE audit_events ADD COLUMN scope_tags TEXT NOT NULL DEFAULT '[]';
CREATE TABLE api_tokens (
    jti         TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    permissions TEXT NOT NULL,
    revoked_at  BIGINT,
    revoked_by  TEXT
);
CREATE INDEX api_tokens_by_expiry ON api_tokens (expires_at);
"#,
    // KEK state in meta is stored as text records (domain/kek/record.rs),
    // no longer JSON. The rotation in progress is converted field by field
    // (a value that is not JSON or lacks a field is left as it is: the
    // domain then reports it corrupt). Signer registrations in JSON are
    // deleted, not converted: they are heartbeats that each running signer
    // rewrites every few seconds. Touches only meta: it may run at any
    // position among other migrations.
    r#"
DO $$
BEGIN
    UPDATE meta SET value = coalesce(
           'from='      || replace(replace((value::jsonb ->> 'from'), chr(92), chr(92) || chr(92)), chr(10), chr(92) || 'n') || chr(10)
        || 'target='    || replace(replace((value::jsonb ->> 'target'), chr(92), chr(92) || chr(92)), chr(10), chr(92) || 'n') || chr(10)
        || CASE WHEN (value::jsonb ->> 'kind') IS NULL THEN 'kind'
                ELSE 'kind=' || replace(replace((value::jsonb ->> 'kind'), chr(92), chr(92) || chr(92)), chr(10), chr(92) || 'n') END || chr(10)
        || 'after='     || replace(replace((value::jsonb ->> 'after'), chr(92), chr(92) || chr(92)), chr(10), chr(92) || 'n') || chr(10)
        || 'resealed='  || (value::jsonb ->> 'resealed') || chr(10)
        || 'startedAt=' || (value::jsonb ->> 'startedAt') || chr(10),
        value)
    WHERE key = 'kek_rotation' AND substr(value, 1, 1) = '{';
EXCEPTION WHEN data_exception THEN
    NULL; -- not JSON (or not jsonb's): left as it is
END
$$;
DELETE FROM meta WHERE substr(key, 1, 11) = 'kek_signer:' AND substr(value, 1, 1) = '{';
"#,
];
