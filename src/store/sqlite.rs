//! The embedded default backend: one SQLite file in WAL mode with
//! `synchronous=FULL`, so a committed transaction survives power loss and
//! `kill -9`, and other processes (the CLI while `serve` runs) can read and
//! write the same file.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    AuditRow, CaRow, Change, ChangeKind, CrlRow, DelegateRow, LeafFilter, LeafQuery, LeafRow, LeafStatusRow, Presigned,
    Result, RevocationReason, SealedTable, Store, StoreError, TokenRow, Tx, TxMode,
};

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run. Never edit a released migration: append a new one.
const MIGRATIONS: &[&str] = &[
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
    r#"
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
    r#"
CREATE TABLE ocsp_delegates (
    ca_id      TEXT PRIMARY KEY,
    cert       BLOB NOT NULL,
    sealed_key BLOB NOT NULL,
    not_after  INTEGER NOT NULL
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
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    permissions TEXT NOT NULL,
    revoked_at  INTEGER,
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
"#,
];

/// How long a writer waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
const BUSY_STEP: Duration = Duration::from_millis(2);

fn busy_retry(attempt: i32) -> bool {
    if u128::from(attempt.unsigned_abs()) * BUSY_STEP.as_millis() >= BUSY_TIMEOUT.as_millis() {
        return false;
    }
    std::thread::sleep(BUSY_STEP);
    true
}

pub struct SqliteStore {
    /// The one connection that writes (SQLite admits one writer anyway).
    conn: Mutex<Connection>,
    /// Idle read connections: in WAL mode readers never wait for the writer,
    /// so the responder's snapshot follower is not held up by an fsync.
    readers: Mutex<Vec<Connection>>,
    /// None for an in-memory database, which cannot be shared by connections.
    path: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        Self::setup(conn, Some(path.to_path_buf()))
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?, None)
    }

    fn reader(&self, path: &Path) -> Result<Connection> {
        if let Some(c) = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let c = Connection::open(path)?;
        c.busy_handler(Some(busy_retry))?;
        c.pragma_update(None, "foreign_keys", "ON")?;
        Ok(c)
    }

    fn setup(conn: Connection, path: Option<std::path::PathBuf>) -> Result<Self> {
        // Short, even retries instead of SQLite's default back-off (which
        // sleeps up to 100 ms per retry and lets some writers starve).
        conn.busy_handler(Some(busy_retry))?;
        // WAL lets readers proceed while a writer commits; FULL syncs the WAL
        // on every commit, which is what makes an acknowledgement durable.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            path,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Tests: creates the database file with its schema as an earlier
    /// release left it, before the first migration whose SQL contains
    /// `marker` (so the test does not depend on that migration's position).
    #[cfg(test)]
    pub(crate) fn create_before_migration(path: &Path, marker: &str) -> Result<()> {
        let upto = MIGRATIONS
            .iter()
            .position(|m| m.contains(marker))
            .unwrap_or_else(|| panic!("no migration mentions {marker:?}"));
        let conn = Connection::open(path)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().take(upto) {
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        // A poisoned lock means a panic mid-transaction on another thread;
        // SQLite rolled that transaction back, so the connection is usable.
        Ok(self.conn.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn migrate(&self) -> Result<()> {
        let conn = self.lock()?;
        // Up to date (the common case): no write lock, so a burst of CLI
        // processes does not queue behind each other just to open the store.
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == MIGRATIONS.len() as i64 {
            return Ok(());
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let run = || -> Result<()> {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let supported = MIGRATIONS.len() as i64;
            if version > supported {
                return Err(StoreError::SchemaTooNew {
                    found: version,
                    supported,
                });
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                conn.execute_batch(sql)?;
                conn.pragma_update(None, "user_version", (i + 1) as i64)?;
            }
            Ok(())
        };
        match run() {
            Ok(()) => Ok(conn.execute_batch("COMMIT")?),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

impl Store for SqliteStore {
    fn begin(&self, mode: TxMode) -> Result<Box<dyn Tx + '_>> {
        let conn = match (mode, &self.path) {
            (TxMode::Read, Some(path)) => ConnRef::Pooled(Some(self.reader(path)?), &self.readers),
            _ => ConnRef::Locked(self.lock()?),
        };
        // IMMEDIATE takes the write lock up front, so a read-check-write
        // sequence inside the transaction cannot be interleaved by another
        // process and no deadlock-upgrade failure can happen mid-way.
        conn.execute_batch(match mode {
            TxMode::Read => "BEGIN DEFERRED",
            TxMode::Write => "BEGIN IMMEDIATE",
        })?;
        Ok(Box::new(SqliteTx { conn, open: true }))
    }

    /// Notices other processes' commits (the CLI revoking while `serve`
    /// runs) within a few milliseconds: `PRAGMA data_version` on a
    /// connection of its own changes whenever another connection commits.
    /// One cheap query every [`WATCH_EVERY`], no lock, no transaction.
    fn watch(
        &self,
        on_change: std::sync::Arc<dyn Fn() + Send + Sync>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Option<std::io::Result<std::thread::JoinHandle<()>>> {
        let path = self.path.clone()?;
        Some(
            std::thread::Builder::new()
                .name("sqlite-watch".into())
                .spawn(move || watch_loop(&path, &*on_change, &stop)),
        )
    }
}

/// How often the watcher asks SQLite whether another connection committed.
const WATCH_EVERY: Duration = Duration::from_millis(2);

fn watch_loop(path: &Path, on_change: &(dyn Fn() + Send + Sync), stop: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    let version = |c: &Connection| -> rusqlite::Result<i64> {
        c.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))
    };
    let mut conn: Option<Connection> = None;
    let mut last = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok();
        }
        match conn.as_ref().map(version) {
            Some(Ok(v)) => {
                if last.is_some_and(|l| l != v) {
                    on_change();
                }
                last = Some(v);
            }
            // Reopen next round; the maintainer's poll covers the gap.
            Some(Err(_)) | None => conn = None,
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

/// The connection a transaction runs on: the writer (locked) or a pooled reader.
enum ConnRef<'a> {
    Locked(MutexGuard<'a, Connection>),
    Pooled(Option<Connection>, &'a Mutex<Vec<Connection>>),
}

impl std::ops::Deref for ConnRef<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            ConnRef::Locked(g) => g,
            // Some until drop: the connection leaves only in Drop.
            ConnRef::Pooled(c, _) => c
                .as_ref()
                .unwrap_or_else(|| unreachable!("pooled connection taken before drop")),
        }
    }
}

impl Drop for ConnRef<'_> {
    fn drop(&mut self) {
        if let ConnRef::Pooled(c, pool) = self {
            if let Some(c) = c.take() {
                pool.lock().unwrap_or_else(|p| p.into_inner()).push(c);
            }
        }
    }
}

struct SqliteTx<'a> {
    conn: ConnRef<'a>,
    open: bool,
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

const CA_COLUMNS: &str = "id, common_name, issuer_id, status, doc, cert, chain, csr, revoked_at, revocation_reason, \
                          row_version, crl_number, ocsp_sha1, ocsp_sha256, ocsp_this_update";

fn presigned(r: &Row<'_>, first: usize) -> rusqlite::Result<Option<Presigned>> {
    let sha1: Option<Vec<u8>> = r.get(first)?;
    let sha256: Option<Vec<u8>> = r.get(first + 1)?;
    let this_update: Option<i64> = r.get(first + 2)?;
    Ok(match (sha1, sha256, this_update) {
        (Some(sha1), Some(sha256), Some(this_update)) => Some(Presigned {
            sha1,
            sha256,
            this_update,
        }),
        _ => None,
    })
}

/// A stored reason code, decoded once for every row kind.
fn reason(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<RevocationReason>> {
    super::reason_from_column(r.get(i)?)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Integer, Box::new(e)))
}

fn ca_row(r: &Row<'_>) -> rusqlite::Result<CaRow> {
    let chain: Option<Vec<u8>> = r.get(6)?;
    Ok(CaRow {
        id: r.get(0)?,
        common_name: r.get(1)?,
        issuer_id: r.get(2)?,
        status: r.get(3)?,
        doc: r.get(4)?,
        cert: r.get(5)?,
        chain: split_chain(chain.as_deref().unwrap_or_default()),
        csr: r.get(7)?,
        revoked_at: r.get(8)?,
        revocation_reason: reason(r, 9)?,
        row_version: r.get(10)?,
        crl_number: r.get(11)?,
        ocsp: presigned(r, 12)?,
    })
}

/// Chains are stored as length-prefixed DER blobs (4-byte big-endian length),
/// by both backends.
pub(super) fn join_chain(chain: &[Vec<u8>]) -> Option<Vec<u8>> {
    if chain.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for c in chain {
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(c);
    }
    Some(out)
}

pub(super) fn split_chain(mut blob: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while blob.len() >= 4 {
        let len = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        let Some(cert) = blob.get(4..4 + len) else {
            break;
        };
        out.push(cert.to_vec());
        blob = &blob[4 + len..];
    }
    out
}

const LEAF_COLUMNS: &str =
    "seq, id, ca_id, serial, not_after, revoked_at, revocation_reason, doc, der, ocsp_sha1, ocsp_sha256, ocsp_this_update";
const LEAF_STATUS_COLUMNS: &str =
    "seq, id, ca_id, serial, not_after, revoked_at, revocation_reason, ocsp_sha1, ocsp_sha256, ocsp_this_update";

fn leaf_status_row(r: &Row<'_>) -> rusqlite::Result<LeafStatusRow> {
    Ok(LeafStatusRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        ca_id: r.get(2)?,
        serial: r.get(3)?,
        not_after: r.get(4)?,
        revoked_at: r.get(5)?,
        revocation_reason: reason(r, 6)?,
        ocsp: presigned(r, 7)?,
    })
}

fn leaf_row(r: &Row<'_>) -> rusqlite::Result<LeafRow> {
    Ok(LeafRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        ca_id: r.get(2)?,
        serial: r.get(3)?,
        not_after: r.get(4)?,
        revoked_at: r.get(5)?,
        revocation_reason: reason(r, 6)?,
        doc: r.get(7)?,
        der: r.get(8)?,
        ocsp: presigned(r, 9)?,
    })
}

/// SQL condition and bound parameter for a leaf filter. Every condition uses
/// its parameter exactly once (`? IS NULL` when it needs no value) so one
/// statement shape serves all filters.
fn filter_sql(filter: LeafFilter) -> (&'static str, Option<i64>) {
    match filter {
        LeafFilter::All => ("? IS NULL", None),
        LeafFilter::Active { now } => ("revoked_at IS NULL AND not_after > ?", Some(now)),
        LeafFilter::Revoked => ("revoked_at IS NOT NULL AND ? IS NULL", None),
        LeafFilter::Expired { now } => ("revoked_at IS NULL AND not_after <= ?", Some(now)),
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

impl Tx for SqliteTx<'_> {
    fn meta(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    fn delete_meta(&mut self, key: &str) -> Result<()> {
        self.conn.execute("DELETE FROM meta WHERE key = ?", [key])?;
        Ok(())
    }

    fn meta_with_prefix(&mut self, prefix: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value FROM meta WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key")?;
        let rows = stmt.query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn sealed_keys(&mut self, table: SealedTable, after_owner: &str, limit: u32) -> Result<Vec<(String, Vec<u8>)>> {
        let sql = match table {
            SealedTable::CaKeys => {
                "SELECT id, sealed_key FROM cas WHERE deleted_at IS NULL AND sealed_key IS NOT NULL AND id > ?
                 ORDER BY id LIMIT ?"
            }
            SealedTable::OcspDelegateKeys => {
                "SELECT ca_id, sealed_key FROM ocsp_delegates WHERE ca_id > ? ORDER BY ca_id LIMIT ?"
            }
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![after_owner, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn replace_sealed_key(&mut self, table: SealedTable, owner: &str, sealed: &[u8]) -> Result<bool> {
        let sql = match table {
            SealedTable::CaKeys => {
                "UPDATE cas SET sealed_key = ? WHERE id = ? AND deleted_at IS NULL AND sealed_key IS NOT NULL"
            }
            SealedTable::OcspDelegateKeys => "UPDATE ocsp_delegates SET sealed_key = ? WHERE ca_id = ?",
        };
        Ok(self.conn.execute(sql, params![sealed, owner])? == 1)
    }

    fn ca(&mut self, id: &str) -> Result<Option<CaRow>> {
        let sql = format!("SELECT {CA_COLUMNS} FROM cas WHERE id = ? AND deleted_at IS NULL");
        Ok(self.conn.query_row(&sql, [id], ca_row).optional()?)
    }

    fn cas(&mut self) -> Result<Vec<CaRow>> {
        let sql = format!("SELECT {CA_COLUMNS} FROM cas WHERE deleted_at IS NULL ORDER BY created_order");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], ca_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn revoked_children(&mut self, issuer_id: &str) -> Result<Vec<CaRow>> {
        let sql = format!(
            "SELECT {CA_COLUMNS} FROM cas WHERE issuer_id = ? AND revoked_at IS NOT NULL ORDER BY created_order"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map([issuer_id], ca_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn live_children(&mut self, issuer_id: &str) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM cas WHERE issuer_id = ? AND deleted_at IS NULL",
            [issuer_id],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn insert_ca(&mut self, row: &CaRow, sealed_key: Option<&[u8]>) -> Result<()> {
        let order: i64 = self
            .conn
            .query_row("SELECT coalesce(max(created_order), 0) + 1 FROM cas", [], |r| r.get(0))?;
        let res = self.conn.execute(
            "INSERT INTO cas (id, common_name, issuer_id, status, doc, cert, chain, csr, sealed_key,
                              revoked_at, revocation_reason, row_version, crl_number, created_order,
                              ocsp_sha1, ocsp_sha256, ocsp_this_update)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                row.id,
                row.common_name,
                row.issuer_id,
                row.status,
                row.doc,
                row.cert,
                join_chain(&row.chain),
                row.csr,
                sealed_key,
                row.revoked_at,
                row.revocation_reason.map(RevocationReason::code),
                row.row_version,
                row.crl_number,
                order,
                row.ocsp.as_ref().map(|o| &o.sha1),
                row.ocsp.as_ref().map(|o| &o.sha256),
                row.ocsp.as_ref().map(|o| o.this_update)
            ],
        );
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::DuplicateCommonName(row.common_name.clone())),
            Err(e) => Err(e.into()),
        }
    }

    fn update_ca(&mut self, row: &CaRow) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE cas SET status = ?, doc = ?, cert = ?, chain = ?, csr = ?, revoked_at = ?,
                            revocation_reason = ?, row_version = ?, ocsp_sha1 = ?, ocsp_sha256 = ?, ocsp_this_update = ?
             WHERE id = ? AND deleted_at IS NULL AND row_version = ?",
            params![
                row.status,
                row.doc,
                row.cert,
                join_chain(&row.chain),
                row.csr,
                row.revoked_at,
                row.revocation_reason.map(RevocationReason::code),
                row.row_version,
                row.ocsp.as_ref().map(|o| &o.sha1),
                row.ocsp.as_ref().map(|o| &o.sha256),
                row.ocsp.as_ref().map(|o| o.this_update),
                row.id,
                row.row_version - 1
            ],
        )?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    fn delete_ca(&mut self, id: &str, at: i64) -> Result<()> {
        self.conn.execute("DELETE FROM leaves WHERE ca_id = ?", [id])?;
        self.conn.execute("DELETE FROM ocsp_delegates WHERE ca_id = ?", [id])?;
        let n = self.conn.execute(
            "UPDATE cas SET deleted_at = ?, sealed_key = NULL, csr = NULL, row_version = row_version + 1
             WHERE id = ? AND deleted_at IS NULL",
            params![at, id],
        )?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    fn sealed_key(&mut self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row(
                "SELECT sealed_key FROM cas WHERE id = ? AND deleted_at IS NULL",
                [id],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()?
            .flatten())
    }

    fn reserve_crl_numbers(&mut self, id: &str, count: i64) -> Result<i64> {
        Ok(self.conn.query_row(
            "UPDATE cas SET crl_number = crl_number + ? WHERE id = ? RETURNING crl_number",
            params![count, id],
            |r| r.get(0),
        )?)
    }

    fn crl_number(&mut self, ca_id: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT crl_number FROM crls WHERE ca_id = ?", [ca_id], |r| r.get(0))
            .optional()?)
    }

    fn insert_leaf(&mut self, row: &LeafRow) -> Result<i64> {
        let res = self
            .conn
            .prepare_cached(
                "INSERT INTO leaves (id, ca_id, serial, not_after, revoked_at, revocation_reason, doc, der,
                                 ocsp_sha1, ocsp_sha256, ocsp_this_update)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                row.id,
                row.ca_id,
                row.serial,
                row.not_after,
                row.revoked_at,
                row.revocation_reason.map(RevocationReason::code),
                row.doc,
                row.der,
                row.ocsp.as_ref().map(|o| &o.sha1),
                row.ocsp.as_ref().map(|o| &o.sha256),
                row.ocsp.as_ref().map(|o| o.this_update)
            ]);
        match res {
            Ok(_) => Ok(self.conn.last_insert_rowid()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::DuplicateSerial),
            Err(e) => Err(e.into()),
        }
    }

    fn leaf(&mut self, id: &str) -> Result<Option<LeafRow>> {
        let sql = format!("SELECT {LEAF_COLUMNS} FROM leaves WHERE id = ?");
        Ok(self.conn.prepare_cached(&sql)?.query_row([id], leaf_row).optional()?)
    }

    fn leaves_by_serial(&mut self, ca_id: Option<&str>, serial: &str) -> Result<Vec<LeafRow>> {
        let sql =
            format!("SELECT {LEAF_COLUMNS} FROM leaves WHERE serial = ?1 AND (?2 IS NULL OR ca_id = ?2) ORDER BY seq");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![serial, ca_id], leaf_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn leaves(&mut self, q: &LeafQuery) -> Result<Vec<LeafRow>> {
        let (cond, now) = filter_sql(q.filter);
        // Two statement shapes, so SQLite can walk (ca_id, seq) or seq in
        // order: an `?1 IS NULL OR ca_id = ?1` disjunction defeats the index
        // and turns every page into a sort of the whole CA.
        let scope = if q.ca_id.is_some() { "ca_id = ?1" } else { "?1 IS NULL" };
        let sql = format!(
            "SELECT {LEAF_COLUMNS} FROM leaves WHERE {scope} AND seq > ?2 AND {} ORDER BY seq LIMIT ?3",
            cond.replace('?', "?4")
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![q.ca_id, q.after_seq, q.limit, now], leaf_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn count_leaves(&mut self, ca_id: Option<&str>, filter: LeafFilter) -> Result<u64> {
        let (cond, now) = filter_sql(filter);
        let scope = if ca_id.is_some() { "ca_id = ?1" } else { "?1 IS NULL" };
        let sql = format!(
            "SELECT count(*) FROM leaves WHERE {scope} AND {}",
            cond.replace('?', "?2")
        );
        let n: i64 = self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![ca_id, now], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn revoke_leaf(&mut self, id: &str, at: i64, reason: RevocationReason, ocsp: &Presigned) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE leaves SET revoked_at = ?, revocation_reason = ?, ocsp_sha1 = ?, ocsp_sha256 = ?,
                                   ocsp_this_update = ?
                 WHERE id = ? AND revoked_at IS NULL",
            )?
            .execute(params![at, reason.code(), ocsp.sha1, ocsp.sha256, ocsp.this_update, id])?;
        Ok(n == 1)
    }

    fn set_leaf_ocsp(&mut self, id: &str, ocsp: &Presigned, seq: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE leaves SET ocsp_sha1 = ?, ocsp_sha256 = ?, ocsp_this_update = ?, ocsp_seq = ? WHERE id = ?",
            )?
            .execute(params![ocsp.sha1, ocsp.sha256, ocsp.this_update, seq, id])?;
        Ok(())
    }

    fn leaves_due_for_ocsp(&mut self, signed_before: i64, limit: u32) -> Result<Vec<LeafStatusRow>> {
        let sql = format!(
            "SELECT {LEAF_STATUS_COLUMNS} FROM leaves
             WHERE ocsp_this_update IS NULL OR ocsp_this_update < ? ORDER BY ocsp_this_update LIMIT ?"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![signed_before, limit], leaf_status_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn leaves_signed_at_seq(&mut self, ca_id: &str, seq: i64) -> Result<Vec<LeafStatusRow>> {
        let sql = format!("SELECT {LEAF_STATUS_COLUMNS} FROM leaves WHERE ocsp_seq = ? AND ca_id = ?");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![seq, ca_id], leaf_status_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn leaf_status_page(&mut self, ca_id: &str, after_seq: i64, limit: u32) -> Result<Vec<LeafStatusRow>> {
        let sql = format!("SELECT {LEAF_STATUS_COLUMNS} FROM leaves WHERE ca_id = ? AND seq > ? ORDER BY seq LIMIT ?");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![ca_id, after_seq, limit], leaf_status_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn leaf_status(&mut self, id: &str) -> Result<Option<LeafStatusRow>> {
        let sql = format!("SELECT {LEAF_STATUS_COLUMNS} FROM leaves WHERE id = ?");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([id], leaf_status_row)
            .optional()?)
    }

    fn crl(&mut self, ca_id: &str) -> Result<Option<CrlRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT ca_id, crl_number, this_update, next_update, der FROM crls WHERE ca_id = ?",
                [ca_id],
                |r| {
                    Ok(CrlRow {
                        ca_id: r.get(0)?,
                        number: r.get(1)?,
                        this_update: r.get(2)?,
                        next_update: r.get(3)?,
                        der: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    fn put_token(&mut self, t: &TokenRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO api_tokens (jti, principal, issued_at, expires_at, permissions, revoked_at, revoked_by)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            params![
                t.jti,
                t.principal,
                t.issued_at,
                t.expires_at,
                t.permissions,
                t.revoked_at,
                t.revoked_by
            ],
        )?;
        Ok(())
    }

    fn tokens(&mut self, expiring_after: i64) -> Result<Vec<TokenRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT jti, principal, issued_at, expires_at, permissions, revoked_at, revoked_by FROM api_tokens
             WHERE expires_at > ? OR expires_at = 0 ORDER BY issued_at DESC, jti",
        )?;
        let rows = stmt
            .query_map([expiring_after], |r| {
                Ok(TokenRow {
                    jti: r.get(0)?,
                    principal: r.get(1)?,
                    issued_at: r.get(2)?,
                    expires_at: r.get(3)?,
                    permissions: r.get(4)?,
                    revoked_at: r.get(5)?,
                    revoked_by: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn revoke_token(&mut self, jti: &str, at: i64, by: &str) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO api_tokens (jti, principal, issued_at, expires_at, permissions, revoked_at, revoked_by)
             VALUES (?1, '', 0, 0, '', ?2, ?3)
             ON CONFLICT (jti) DO UPDATE SET revoked_at = excluded.revoked_at, revoked_by = excluded.revoked_by
             WHERE api_tokens.revoked_at IS NULL",
            params![jti, at, by],
        )?;
        Ok(n > 0)
    }

    fn token_revoked(&mut self, jti: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT revoked_at IS NOT NULL FROM api_tokens WHERE jti = ?")?
            .query_row([jti], |r| r.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false))
    }

    fn ocsp_delegate(&mut self, ca_id: &str) -> Result<Option<DelegateRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT cert, sealed_key, not_after FROM ocsp_delegates WHERE ca_id = ?",
                [ca_id],
                |r| {
                    Ok(DelegateRow {
                        cert: r.get(0)?,
                        sealed_key: r.get(1)?,
                        not_after: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    fn put_ocsp_delegate(&mut self, ca_id: &str, cert: &[u8], sealed_key: &[u8], not_after: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO ocsp_delegates (ca_id, cert, sealed_key, not_after) VALUES (?, ?, ?, ?)
             ON CONFLICT (ca_id) DO UPDATE SET cert = excluded.cert, sealed_key = excluded.sealed_key,
                 not_after = excluded.not_after",
            params![ca_id, cert, sealed_key, not_after],
        )?;
        Ok(())
    }

    fn roles(&mut self) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, permissions FROM roles ORDER BY name")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn put_role(&mut self, name: &str, permissions: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO roles (name, permissions) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET permissions = excluded.permissions",
            [name, permissions],
        )?;
        Ok(())
    }

    fn assignments(&mut self, principal: Option<&str>) -> Result<Vec<(String, String, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT principal, role, scope_tags FROM role_assignments WHERE ?1 IS NULL OR principal = ?1
             ORDER BY principal, role",
        )?;
        let rows = stmt
            .query_map([principal], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn put_assignment(&mut self, principal: &str, role: &str, scope_tags: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO role_assignments (principal, role, scope_tags) VALUES (?, ?, ?)
             ON CONFLICT (principal, role) DO UPDATE SET scope_tags = excluded.scope_tags",
            [principal, role, scope_tags],
        )?;
        Ok(())
    }

    fn append_audit(&mut self, e: &AuditRow) -> Result<i64> {
        self.conn
            .prepare_cached(
                "INSERT INTO audit_events (at, actor, activity, target_type, target_id, result, detail, scope_tags)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                e.at,
                e.actor,
                e.activity,
                e.target_type,
                e.target_id,
                e.result,
                e.detail,
                e.scope_tags
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn audit_events(&mut self, activity: Option<&str>, after_seq: i64, limit: u32) -> Result<Vec<AuditRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, at, actor, activity, target_type, target_id, result, detail, scope_tags FROM audit_events
             WHERE (?1 IS NULL OR activity = ?1) AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![activity, after_seq, limit], |r| {
                Ok(AuditRow {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    activity: r.get(3)?,
                    target_type: r.get(4)?,
                    target_id: r.get(5)?,
                    result: r.get(6)?,
                    detail: r.get(7)?,
                    scope_tags: r.get(8)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn put_crl(&mut self, crl: &CrlRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO crls (ca_id, crl_number, this_update, next_update, der) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (ca_id) DO UPDATE SET crl_number = excluded.crl_number, this_update = excluded.this_update,
                 next_update = excluded.next_update, der = excluded.der
             WHERE excluded.crl_number > crls.crl_number",
            params![crl.ca_id, crl.number, crl.this_update, crl.next_update, crl.der],
        )?;
        Ok(())
    }

    fn update_leaf_doc(&mut self, id: &str, doc: &str) -> Result<()> {
        let n = self.conn.execute("UPDATE leaves SET doc = ? WHERE id = ?", [doc, id])?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    fn append_change(&mut self, at: i64, kind: ChangeKind, ca_id: &str, leaf_id: Option<&str>) -> Result<i64> {
        self.conn
            .prepare_cached("INSERT INTO changes (at, kind, ca_id, leaf_id) VALUES (?, ?, ?, ?)")?
            .execute(params![at, kind.as_str(), ca_id, leaf_id])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn last_change_seq(&mut self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))?)
    }

    fn changes_since(&mut self, seq: i64, limit: u32) -> Result<Vec<Change>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, at, kind, ca_id, leaf_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?")?;
        let rows = stmt
            .query_map(params![seq, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(seq, at, kind, ca_id, leaf_id)| {
                let kind =
                    ChangeKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("change kind {kind}")))?;
                Ok(Change {
                    seq,
                    at,
                    kind,
                    ca_id,
                    leaf_id,
                })
            })
            .collect()
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

// The tests of this backend are the shared conformance suite in
// `super::conformance`, which runs them against PostgreSQL too.
