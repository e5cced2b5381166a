//! The schema, one migration per step, for both backends: version `n` is
//! the same schema on SQLite and PostgreSQL. Where the SQL is the same it is
//! written once; where the dialects differ (types, identity columns, trigger
//! and JSON syntax) both texts sit side by side here and nowhere else.
//!
//! Never edit a released migration: append a new one.

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl Migration {
    const fn same(sql: &'static str) -> Self {
        Migration {
            sqlite: sql,
            postgres: sql,
        }
    }
}

/// Every migration, applied in order once; each backend records how many ran.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        sqlite: r#"
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
    cert              BLOB,
    chain             BLOB,
    csr               BLOB,
    sealed_key        BLOB,
    revoked_at        INTEGER,
    revocation_reason INTEGER,
    deleted_at        INTEGER,
    row_version       INTEGER NOT NULL,
    crl_number        INTEGER NOT NULL DEFAULT 0,
    created_order     INTEGER NOT NULL
);
CREATE UNIQUE INDEX cas_live_common_name ON cas (lower(common_name)) WHERE deleted_at IS NULL;
CREATE INDEX cas_issuer ON cas (issuer_id);
CREATE TABLE leaves (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    ca_id             TEXT NOT NULL REFERENCES cas (id),
    serial            TEXT NOT NULL,
    not_after         INTEGER NOT NULL,
    revoked_at        INTEGER,
    revocation_reason INTEGER,
    doc               TEXT NOT NULL,
    der               BLOB NOT NULL,
    UNIQUE (ca_id, serial)
);
CREATE INDEX leaves_by_ca ON leaves (ca_id, revoked_at, seq);
CREATE INDEX leaves_by_serial ON leaves (serial);
CREATE TABLE changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    ca_id   TEXT NOT NULL,
    leaf_id TEXT
);
"#,
        postgres: r#"
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
    },
    Migration {
        sqlite: r#"
ALTER TABLE leaves ADD COLUMN ocsp_sha1 BLOB;
ALTER TABLE leaves ADD COLUMN ocsp_sha256 BLOB;
ALTER TABLE leaves ADD COLUMN ocsp_this_update INTEGER;
ALTER TABLE leaves ADD COLUMN ocsp_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX leaves_ocsp_due ON leaves (ocsp_this_update);
CREATE INDEX leaves_ocsp_seq ON leaves (ocsp_seq);
ALTER TABLE cas ADD COLUMN ocsp_sha1 BLOB;
ALTER TABLE cas ADD COLUMN ocsp_sha256 BLOB;
ALTER TABLE cas ADD COLUMN ocsp_this_update INTEGER;
CREATE TABLE crls (
    ca_id       TEXT PRIMARY KEY,
    crl_number  INTEGER NOT NULL,
    this_update INTEGER NOT NULL,
    next_update INTEGER NOT NULL,
    der         BLOB NOT NULL
);
"#,
        postgres: r#"
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
    },
    Migration {
        sqlite: r#"
CREATE TABLE ocsp_delegates (
    ca_id      TEXT PRIMARY KEY,
    cert       BLOB NOT NULL,
    sealed_key BLOB NOT NULL,
    not_after  INTEGER NOT NULL
);
"#,
        postgres: r#"
CREATE TABLE ocsp_delegates (
    ca_id      TEXT PRIMARY KEY,
    cert       BYTEA NOT NULL,
    sealed_key BYTEA NOT NULL,
    not_after  BIGINT NOT NULL
);
"#,
    },
    Migration::same(
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
    ),
    Migration {
        sqlite: r#"
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    activity    TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    result      TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_by_activity ON audit_events (activity, seq);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
"#,
        postgres: r#"
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
    },
    // Paging a CA's leaves in issuance order without sorting the whole CA.
    Migration::same(
        r#"
CREATE INDEX leaves_by_ca_seq ON leaves (ca_id, seq);
"#,
    ),
    // Audit events carry the scope tags of what they concern (read by scope);
    // API tokens get ids and a deny list.
    Migration {
        sqlite: r#"
ALTER TABLE audit_events ADD COLUMN scope_tags TEXT NOT NULL DEFAULT '[]';
CREATE TABLE api_tokens (
    jti         TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    permissions TEXT NOT NULL,
    revoked_at  INTEGER,
    revoked_by  TEXT
);
CREATE INDEX api_tokens_by_expiry ON api_tokens (expires_at);
"#,
        postgres: r#"
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
    },
    // Typed records: every fact of a CA and a leaf in a column of its own,
    // filled from the JSON documents that used to hold them (which go);
    // audit scope tags as a token list; the indexes that page a CA's leaves
    // by every $orderby key without sorting.
    Migration {
        sqlite: TYPED_RECORDS_SQLITE,
        postgres: TYPED_RECORDS_POSTGRES,
    },
    // KEK state in meta is stored as text records (domain/kek/record.rs),
    // no longer JSON. The rotation in progress is converted field by field
    // (a value that is not JSON or lacks a field is left as it is: the
    // domain then reports it corrupt). Signer registrations in JSON are
    // deleted, not converted: they are heartbeats that each running signer
    // rewrites every few seconds. Touches only meta: it may run at any
    // position among other migrations.
    Migration {
        sqlite: KEK_RECORDS_SQLITE,
        postgres: KEK_RECORDS_POSTGRES,
    },
    // Partitioned and delta CRLs: a CA spreads new issuance over
    // `crl_partitions` partitions (0: its one `current.crl`) and may publish
    // delta CRLs; a leaf's partition is fixed at issuance; CRLs are stored
    // per partition, complete and delta side by side. Existing leaves stay
    // on partition 0, the `current.crl` their certificates name.
    Migration {
        sqlite: r#"
ALTER TABLE cas ADD COLUMN crl_partitions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cas ADD COLUMN delta_crls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leaves ADD COLUMN crl_partition INTEGER NOT NULL DEFAULT 0;
CREATE TABLE crls_partitioned (
    ca_id         TEXT NOT NULL,
    crl_partition INTEGER NOT NULL,
    delta         INTEGER NOT NULL,
    crl_number    INTEGER NOT NULL,
    this_update   INTEGER NOT NULL,
    next_update   INTEGER NOT NULL,
    der           BLOB NOT NULL,
    PRIMARY KEY (ca_id, crl_partition, delta)
);
INSERT INTO crls_partitioned (ca_id, crl_partition, delta, crl_number, this_update, next_update, der)
    SELECT ca_id, 0, 0, crl_number, this_update, next_update, der FROM crls;
DROP TABLE crls;
ALTER TABLE crls_partitioned RENAME TO crls;
"#,
        postgres: r#"
ALTER TABLE cas ADD COLUMN crl_partitions BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cas ADD COLUMN delta_crls BIGINT NOT NULL DEFAULT 0;
ALTER TABLE leaves ADD COLUMN crl_partition BIGINT NOT NULL DEFAULT 0;
ALTER TABLE crls ADD COLUMN crl_partition BIGINT NOT NULL DEFAULT 0;
ALTER TABLE crls ADD COLUMN delta BIGINT NOT NULL DEFAULT 0;
ALTER TABLE crls DROP CONSTRAINT crls_pkey;
ALTER TABLE crls ADD PRIMARY KEY (ca_id, crl_partition, delta);
"#,
    },
    // 11: keyless responders' own OCSP signing keys. A responder asks once
    // (its public key only: the private key never leaves it); an operator
    // approves it; the signing leader then keeps a short-lived delegated
    // OCSP certificate per CA version for it.
    Migration {
        sqlite: r#"
CREATE TABLE responders (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    public_key   BLOB NOT NULL,
    requested_at INTEGER NOT NULL,
    approved_at  INTEGER,
    approved_by  TEXT,
    removed_at   INTEGER
);
CREATE TABLE responder_certs (
    responder_id TEXT NOT NULL,
    ca_id        TEXT NOT NULL,
    ca_version   INTEGER NOT NULL,
    cert         BLOB NOT NULL,
    not_after    INTEGER NOT NULL,
    PRIMARY KEY (responder_id, ca_id, ca_version)
);
"#,
        postgres: r#"
CREATE TABLE responders (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    public_key   BYTEA NOT NULL,
    requested_at BIGINT NOT NULL,
    approved_at  BIGINT,
    approved_by  TEXT,
    removed_at   BIGINT
);
CREATE TABLE responder_certs (
    responder_id TEXT NOT NULL,
    ca_id        TEXT NOT NULL,
    ca_version   BIGINT NOT NULL,
    cert         BYTEA NOT NULL,
    not_after    BIGINT NOT NULL,
    PRIMARY KEY (responder_id, ca_id, ca_version)
);
"#,
    },
    // 12: when each responder last said it is alive: the certificates of one
    // not seen for a certificate lifetime are no longer renewed.
    Migration {
        sqlite: "ALTER TABLE responders ADD COLUMN last_seen_at INTEGER;",
        postgres: "ALTER TABLE responders ADD COLUMN last_seen_at BIGINT;",
    },
    // 13: enrolment. Profiles say what a device may get from an issuing CA;
    // challenges (only their SHA-256 is stored) authorise a request under
    // one profile; each CA's SCEP RA certificate and sealed RSA key; and
    // the senderNonces seen, so a replayed request is refused.
    Migration {
        sqlite: r#"
CREATE TABLE enrolment_profiles (
    id            TEXT PRIMARY KEY,
    ca_id         TEXT NOT NULL,
    name          TEXT NOT NULL,
    key_types     TEXT NOT NULL,
    cn_suffixes   TEXT NOT NULL,
    dns_suffixes  TEXT NOT NULL,
    ekus          TEXT NOT NULL,
    validity_days INTEGER NOT NULL,
    renewal_days  INTEGER NOT NULL,
    requires_approval INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    removed_at    INTEGER,
    key_usages    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX enrolment_profiles_by_ca ON enrolment_profiles (ca_id);
CREATE TABLE enrolment_challenges (
    id          TEXT PRIMARY KEY,
    profile_id  TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    uses_left   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    device_id   TEXT,
    subject     TEXT,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE TABLE scep_ras (
    id         TEXT PRIMARY KEY,
    ca_id      TEXT NOT NULL,
    cert       BLOB NOT NULL,
    sealed_key BLOB NOT NULL,
    not_after  INTEGER NOT NULL
);
CREATE INDEX scep_ras_by_ca ON scep_ras (ca_id, not_after);
CREATE TABLE enrolment_nonces (
    ca_id      TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (ca_id, nonce)
);
CREATE INDEX enrolment_nonces_by_expiry ON enrolment_nonces (expires_at);
CREATE TABLE enrolments (
    leaf_id        TEXT PRIMARY KEY,
    profile_id     TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    at             INTEGER NOT NULL
);
CREATE INDEX enrolments_by_transaction ON enrolments (transaction_id);
CREATE TABLE enrolment_requests (
    id             TEXT PRIMARY KEY,
    ca_id          TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    profile_id     TEXT NOT NULL,
    csr            BLOB NOT NULL,
    device_id      TEXT,
    requested_at   INTEGER NOT NULL,
    state          TEXT NOT NULL,
    decided_at     INTEGER,
    decided_by     TEXT,
    leaf_id        TEXT,
    reason         TEXT,
    UNIQUE (ca_id, transaction_id)
);
"#,
        postgres: r#"
CREATE TABLE enrolment_profiles (
    id            TEXT PRIMARY KEY,
    ca_id         TEXT NOT NULL,
    name          TEXT NOT NULL,
    key_types     TEXT NOT NULL,
    cn_suffixes   TEXT NOT NULL,
    dns_suffixes  TEXT NOT NULL,
    ekus          TEXT NOT NULL,
    validity_days BIGINT NOT NULL,
    renewal_days  BIGINT NOT NULL,
    requires_approval BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    removed_at    BIGINT,
    key_usages    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX enrolment_profiles_by_ca ON enrolment_profiles (ca_id);
CREATE TABLE enrolment_challenges (
    id          TEXT PRIMARY KEY,
    profile_id  TEXT NOT NULL,
    secret_hash BYTEA NOT NULL UNIQUE,
    uses_left   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    device_id   TEXT,
    subject     TEXT,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE TABLE scep_ras (
    id         TEXT PRIMARY KEY,
    ca_id      TEXT NOT NULL,
    cert       BYTEA NOT NULL,
    sealed_key BYTEA NOT NULL,
    not_after  BIGINT NOT NULL
);
CREATE INDEX scep_ras_by_ca ON scep_ras (ca_id, not_after);
CREATE TABLE enrolment_nonces (
    ca_id      TEXT NOT NULL,
    nonce      BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (ca_id, nonce)
);
CREATE INDEX enrolment_nonces_by_expiry ON enrolment_nonces (expires_at);
CREATE TABLE enrolments (
    leaf_id        TEXT PRIMARY KEY,
    profile_id     TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    at             BIGINT NOT NULL
);
CREATE INDEX enrolments_by_transaction ON enrolments (transaction_id);
CREATE TABLE enrolment_requests (
    id             TEXT PRIMARY KEY,
    ca_id          TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    profile_id     TEXT NOT NULL,
    csr            BYTEA NOT NULL,
    device_id      TEXT,
    requested_at   BIGINT NOT NULL,
    state          TEXT NOT NULL,
    decided_at     BIGINT,
    decided_by     TEXT,
    leaf_id        TEXT,
    reason         TEXT,
    UNIQUE (ca_id, transaction_id)
);
"#,
    },
    // 14: the signed nextUpdate of pre-signed answers, so that a node never
    // serves one past it whatever its own validity setting; SHA-256 answers
    // of leaves are signed on demand from now on (the column may be NULL).
    Migration::same(
        r#"
ALTER TABLE leaves ADD COLUMN ocsp_next_update BIGINT;
ALTER TABLE cas ADD COLUMN ocsp_next_update BIGINT;
"#,
    ),
    // 15: each CRL is compared with the store before it is served, through
    // a digest of every revocation of its scope (count and sum of a 32-bit
    // hash per serial), kept in each revocation's transaction: one small
    // row per scope instead of an index over every revoked serial. A row
    // appears when a signer first needs it (computed from the leaves).
    Migration::same(
        r#"
CREATE TABLE crl_scope_digests (
    ca_id         TEXT NOT NULL,
    crl_partition BIGINT NOT NULL,
    entries       BIGINT NOT NULL,
    digest        BIGINT NOT NULL,
    PRIMARY KEY (ca_id, crl_partition)
);
"#,
    ),
];

const TYPED_RECORDS_SQLITE: &str = r#"
ALTER TABLE cas ADD COLUMN ca_type TEXT;
ALTER TABLE cas ADD COLUMN display_name TEXT;
ALTER TABLE cas ADD COLUMN description TEXT;
ALTER TABLE cas ADD COLUMN organization_name TEXT;
ALTER TABLE cas ADD COLUMN organization_unit TEXT;
ALTER TABLE cas ADD COLUMN country_name TEXT;
ALTER TABLE cas ADD COLUMN state_name TEXT;
ALTER TABLE cas ADD COLUMN locality_name TEXT;
ALTER TABLE cas ADD COLUMN subject_name TEXT;
ALTER TABLE cas ADD COLUMN key_algorithm TEXT;
ALTER TABLE cas ADD COLUMN hash_algorithm TEXT;
ALTER TABLE cas ADD COLUMN key_platform TEXT;
ALTER TABLE cas ADD COLUMN validity_years INTEGER;
ALTER TABLE cas ADD COLUMN ekus TEXT;
ALTER TABLE cas ADD COLUMN scope_tags TEXT;
ALTER TABLE cas ADD COLUMN created_at INTEGER;
ALTER TABLE cas ADD COLUMN modified_at INTEGER;
ALTER TABLE cas ADD COLUMN version_number INTEGER;
ALTER TABLE cas ADD COLUMN issuer_common_name TEXT;
ALTER TABLE cas ADD COLUMN root_common_name TEXT;
ALTER TABLE cas ADD COLUMN issuer_cert_url TEXT;
UPDATE cas SET
    ca_type = json_extract(doc, '$.cloudCertificationAuthorityType'),
    display_name = json_extract(doc, '$.displayName'),
    description = json_extract(doc, '$.description'),
    organization_name = json_extract(doc, '$.organizationName'),
    organization_unit = json_extract(doc, '$.organizationUnit'),
    country_name = json_extract(doc, '$.countryName'),
    state_name = json_extract(doc, '$.stateName'),
    locality_name = json_extract(doc, '$.localityName'),
    subject_name = json_extract(doc, '$.subjectName'),
    key_algorithm = json_extract(doc, '$.certificateKeySize'),
    hash_algorithm = json_extract(doc, '$.cloudCertificationAuthorityHashingAlgorithm'),
    key_platform = json_extract(doc, '$.keyPlatform'),
    issuer_common_name = json_extract(doc, '$.issuerCommonName'),
    root_common_name = json_extract(doc, '$.rootCertificateCommonName'),
    issuer_cert_url = json_extract(doc, '$.certificationAuthorityIssuerUri'),
    validity_years = json_extract(doc, '$.validityPeriodInYears'),
    version_number = coalesce(json_extract(doc, '$.versionNumber'), 1),
    created_at = coalesce(CAST(strftime('%s', json_extract(doc, '$.createdDateTime')) AS INTEGER), 0),
    modified_at = coalesce(CAST(strftime('%s', json_extract(doc, '$.lastModifiedDateTime')) AS INTEGER), 0),
    ekus = coalesce((SELECT group_concat(json_extract(e.value, '$.objectIdentifier'), ' ')
                     FROM json_each(cas.doc, '$.extendedKeyUsages') AS e), ''),
    scope_tags = coalesce((SELECT group_concat(replace(replace(t.value, '%', '%25'), ' ', '%20'), ' ')
                     FROM json_each(cas.doc, '$.roleScopeTagIds') AS t), '');
ALTER TABLE cas DROP COLUMN doc;
ALTER TABLE leaves ADD COLUMN ca_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE leaves ADD COLUMN subject_name TEXT;
-- The subjectName sort key (ASCII case folded): an index range on a plain
-- column, which SQLite seeks by row value (an expression index it does not).
ALTER TABLE leaves ADD COLUMN subject_key TEXT;
ALTER TABLE leaves ADD COLUMN issuer_name TEXT;
ALTER TABLE leaves ADD COLUMN not_before INTEGER;
ALTER TABLE leaves ADD COLUMN thumbprint TEXT;
ALTER TABLE leaves ADD COLUMN device_name TEXT;
ALTER TABLE leaves ADD COLUMN user_principal_name TEXT;
ALTER TABLE leaves ADD COLUMN device_id TEXT;
ALTER TABLE leaves ADD COLUMN user_id TEXT;
ALTER TABLE leaves ADD COLUMN device_platform TEXT;
ALTER TABLE leaves ADD COLUMN key_usages TEXT;
ALTER TABLE leaves ADD COLUMN ekus TEXT;
UPDATE leaves SET
    subject_name = json_extract(doc, '$.subjectName'),
    subject_key = lower(json_extract(doc, '$.subjectName')),
    issuer_name = json_extract(doc, '$.issuerName'),
    thumbprint = json_extract(doc, '$.thumbprint'),
    device_name = json_extract(doc, '$.deviceName'),
    user_principal_name = json_extract(doc, '$.userPrincipalName'),
    device_id = json_extract(doc, '$.deviceId'),
    user_id = json_extract(doc, '$.userId'),
    not_before = coalesce(CAST(strftime('%s', json_extract(doc, '$.validityStartDateTime')) AS INTEGER), 0),
    device_platform = coalesce(json_extract(doc, '$.devicePlatform'), 'Unknown'),
    key_usages = coalesce((SELECT group_concat(k.value, ' ') FROM json_each(leaves.doc, '$.keyUsages') AS k), ''),
    ekus = coalesce((SELECT group_concat(e.value, ' ') FROM json_each(leaves.doc, '$.extendedKeyUsages') AS e), '');
ALTER TABLE leaves DROP COLUMN doc;
-- Audit events are append-only; this one rewrite of their encoding is the
-- exception, inside the migration's transaction.
DROP TRIGGER audit_events_no_update;
UPDATE audit_events SET scope_tags = coalesce((SELECT group_concat(replace(replace(t.value, '%', '%25'), ' ', '%20'), ' ')
        FROM json_each(audit_events.scope_tags) AS t), '')
    WHERE scope_tags LIKE '[%';
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE INDEX leaves_by_subject ON leaves (ca_id, subject_key, seq);
CREATE INDEX leaves_by_start ON leaves (ca_id, not_before, seq);
CREATE INDEX leaves_by_end ON leaves (ca_id, not_after, seq);
-- certificateStatus order: unrevoked by (not_after, seq) splits active from
-- expired at any instant; revoked ones page by (revoked_at, seq) on leaves_by_ca.
CREATE INDEX leaves_unrevoked_by_end ON leaves (ca_id, not_after, seq) WHERE revoked_at IS NULL;
"#;

const TYPED_RECORDS_POSTGRES: &str = r#"
ALTER TABLE cas
    ADD COLUMN ca_type TEXT,
    ADD COLUMN display_name TEXT,
    ADD COLUMN description TEXT,
    ADD COLUMN organization_name TEXT,
    ADD COLUMN organization_unit TEXT,
    ADD COLUMN country_name TEXT,
    ADD COLUMN state_name TEXT,
    ADD COLUMN locality_name TEXT,
    ADD COLUMN subject_name TEXT,
    ADD COLUMN key_algorithm TEXT,
    ADD COLUMN hash_algorithm TEXT,
    ADD COLUMN key_platform TEXT,
    ADD COLUMN validity_years BIGINT,
    ADD COLUMN ekus TEXT,
    ADD COLUMN scope_tags TEXT,
    ADD COLUMN created_at BIGINT,
    ADD COLUMN modified_at BIGINT,
    ADD COLUMN version_number BIGINT,
    ADD COLUMN issuer_common_name TEXT,
    ADD COLUMN root_common_name TEXT,
    ADD COLUMN issuer_cert_url TEXT;
UPDATE cas SET
    ca_type = (doc::jsonb)->>'cloudCertificationAuthorityType',
    display_name = (doc::jsonb)->>'displayName',
    description = (doc::jsonb)->>'description',
    organization_name = (doc::jsonb)->>'organizationName',
    organization_unit = (doc::jsonb)->>'organizationUnit',
    country_name = (doc::jsonb)->>'countryName',
    state_name = (doc::jsonb)->>'stateName',
    locality_name = (doc::jsonb)->>'localityName',
    subject_name = (doc::jsonb)->>'subjectName',
    key_algorithm = (doc::jsonb)->>'certificateKeySize',
    hash_algorithm = (doc::jsonb)->>'cloudCertificationAuthorityHashingAlgorithm',
    key_platform = (doc::jsonb)->>'keyPlatform',
    issuer_common_name = (doc::jsonb)->>'issuerCommonName',
    root_common_name = (doc::jsonb)->>'rootCertificateCommonName',
    issuer_cert_url = (doc::jsonb)->>'certificationAuthorityIssuerUri',
    validity_years = ((doc::jsonb)->>'validityPeriodInYears')::bigint,
    version_number = coalesce(((doc::jsonb)->>'versionNumber')::bigint, 1),
    created_at = coalesce(floor(extract(epoch FROM ((doc::jsonb)->>'createdDateTime')::timestamptz))::bigint, 0),
    modified_at = coalesce(floor(extract(epoch FROM ((doc::jsonb)->>'lastModifiedDateTime')::timestamptz))::bigint, 0),
    ekus = coalesce((SELECT string_agg(e.v->>'objectIdentifier', ' ' ORDER BY e.o)
                     FROM jsonb_array_elements((doc::jsonb)->'extendedKeyUsages') WITH ORDINALITY AS e(v, o)), ''),
    scope_tags = coalesce((SELECT string_agg(replace(replace(t.v, '%', '%25'), ' ', '%20'), ' ' ORDER BY t.o)
                     FROM jsonb_array_elements_text((doc::jsonb)->'roleScopeTagIds') WITH ORDINALITY AS t(v, o)), '');
ALTER TABLE cas DROP COLUMN doc;
ALTER TABLE leaves
    ADD COLUMN ca_version BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN subject_name TEXT,
    ADD COLUMN subject_key TEXT,
    ADD COLUMN issuer_name TEXT,
    ADD COLUMN not_before BIGINT,
    ADD COLUMN thumbprint TEXT,
    ADD COLUMN device_name TEXT,
    ADD COLUMN user_principal_name TEXT,
    ADD COLUMN device_id TEXT,
    ADD COLUMN user_id TEXT,
    ADD COLUMN device_platform TEXT,
    ADD COLUMN key_usages TEXT,
    ADD COLUMN ekus TEXT;
UPDATE leaves SET
    subject_name = (doc::jsonb)->>'subjectName',
    subject_key = lower(((doc::jsonb)->>'subjectName') COLLATE "C"),
    issuer_name = (doc::jsonb)->>'issuerName',
    thumbprint = (doc::jsonb)->>'thumbprint',
    device_name = (doc::jsonb)->>'deviceName',
    user_principal_name = (doc::jsonb)->>'userPrincipalName',
    device_id = (doc::jsonb)->>'deviceId',
    user_id = (doc::jsonb)->>'userId',
    not_before = coalesce(floor(extract(epoch FROM ((doc::jsonb)->>'validityStartDateTime')::timestamptz))::bigint, 0),
    device_platform = coalesce((doc::jsonb)->>'devicePlatform', 'Unknown'),
    key_usages = coalesce((SELECT string_agg(k.v, ' ' ORDER BY k.o)
                     FROM jsonb_array_elements_text((doc::jsonb)->'keyUsages') WITH ORDINALITY AS k(v, o)), ''),
    ekus = coalesce((SELECT string_agg(e.v, ' ' ORDER BY e.o)
                     FROM jsonb_array_elements_text((doc::jsonb)->'extendedKeyUsages') WITH ORDINALITY AS e(v, o)), '');
ALTER TABLE leaves DROP COLUMN doc;
-- Audit events are append-only; this one rewrite of their encoding is the
-- exception, inside the migration's transaction.
ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update;
UPDATE audit_events SET scope_tags = coalesce((SELECT string_agg(replace(replace(t.v, '%', '%25'), ' ', '%20'), ' ' ORDER BY t.o)
        FROM jsonb_array_elements_text(scope_tags::jsonb) WITH ORDINALITY AS t(v, o)), '')
    WHERE scope_tags LIKE '[%';
ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update;
ALTER TABLE audit_events ALTER COLUMN scope_tags SET DEFAULT '';
CREATE INDEX leaves_by_subject ON leaves (ca_id, subject_key, seq);
CREATE INDEX leaves_by_start ON leaves (ca_id, not_before, seq);
CREATE INDEX leaves_by_end ON leaves (ca_id, not_after, seq);
-- certificateStatus order: unrevoked by (not_after, seq) splits active from
-- expired at any instant; revoked ones page by (revoked_at, seq) on leaves_by_ca.
CREATE INDEX leaves_unrevoked_by_end ON leaves (ca_id, not_after, seq) WHERE revoked_at IS NULL;
"#;

const KEK_RECORDS_SQLITE: &str = r#"
UPDATE meta SET value = coalesce(
       'from='      || replace(replace(json_extract(value, '$.from'), char(92), char(92, 92)), char(10), char(92, 110)) || char(10)
    || 'target='    || replace(replace(json_extract(value, '$.target'), char(92), char(92, 92)), char(10), char(92, 110)) || char(10)
    || CASE WHEN json_extract(value, '$.kind') IS NULL THEN 'kind'
            ELSE 'kind=' || replace(replace(json_extract(value, '$.kind'), char(92), char(92, 92)), char(10), char(92, 110)) END || char(10)
    || 'after='     || replace(replace(json_extract(value, '$.after'), char(92), char(92, 92)), char(10), char(92, 110)) || char(10)
    || 'resealed='  || json_extract(value, '$.resealed') || char(10)
    || 'startedAt=' || json_extract(value, '$.startedAt') || char(10),
    value)
WHERE key = 'kek_rotation' AND substr(value, 1, 1) = '{' AND json_valid(value);
DELETE FROM meta WHERE substr(key, 1, 11) = 'kek_signer:' AND substr(value, 1, 1) = '{';
"#;

const KEK_RECORDS_POSTGRES: &str = r#"
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
"#;
