//! The PostgreSQL backend, for deployments that run several responders or
//! want the database managed apart from the nodes: the same tables, the same
//! versioned migrations and the same `Tx` semantics as [`super::sqlite`].
//!
//! It uses the synchronous `postgres` client, which drives tokio-postgres on
//! a private runtime of its own: call it from std threads or tokio's blocking
//! pool (`spawn_blocking`), never directly on an async worker thread.
//!
//! # Isolation, and why the change log cannot be read out of order
//!
//! * Read transactions run at `REPEATABLE READ, READ ONLY`: every statement
//!   sees the snapshot taken by the first one, as in SQLite's WAL mode.
//! * Write transactions first take one transaction-scoped advisory lock
//!   ([`WRITE_LOCK`]), so writers are serialised across every process that
//!   shares the database, like SQLite's `BEGIN IMMEDIATE`. They run at
//!   `READ COMMITTED`: with the lock held nobody else writes, so each
//!   statement's fresh snapshot is the state left by the previous writer plus
//!   this transaction's own changes, i.e. one consistent state. `REPEATABLE
//!   READ` would be wrong here: its snapshot is taken by the first statement,
//!   the lock request itself, *before* the lock is granted, so a writer that
//!   waited would read the state from before its predecessor committed (and
//!   fail with a serialization error on the rows that predecessor changed).
//! * **Invariant:** change-log sequence numbers (and leaf `seq`s) are drawn
//!   while the write lock is held, and the lock is released only after the
//!   commit is visible. Hence commit order equals sequence order: once a
//!   reader sees `seq = n`, every change with a lower number is either visible
//!   too or was rolled back and will never exist. Followers read
//!   `changes_since(last_seen)` and can never skip a row that commits late.
//!   (Numbers of rolled-back transactions are gaps; followers tolerate gaps.)
//!
//! Each write transaction that appended to the change log sends
//! `NOTIFY cloudpki_changes, '<last seq>'` with its commit; [`PgStore::listen`]
//! turns those into wake-ups for the snapshot maintainer.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, ToSql};
use postgres::{Client, Row, Statement};

use super::pg_tls::{describe_tls_error, PgConnector};
use super::sqlite::{join_chain, split_chain};
use super::{
    AuditRow, CaRow, Change, ChangeKind, CrlRow, DelegateRow, LeafFilter, LeafQuery, LeafRow, LeafStatusRow, Presigned,
    Result, RevocationReason, SealedTable, Store, StoreError, TokenRow, Tx, TxMode,
};

/// Schema migrations, applied in order, one to one with SQLite's (version `n`
/// is the same schema on both backends); `schema_migrations` records which
/// have run. Never edit a released migration: append a new one.
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
];

/// Advisory lock every write transaction holds ("cloudpki" in ASCII): the
/// cross-process writer lock. Advisory locks are scoped to one database.
const WRITE_LOCK: i64 = 0x636c_6f75_6470_6b69;
/// Advisory lock serialising migrations of processes connecting at once.
const MIGRATE_LOCK: i64 = WRITE_LOCK + 1;
/// Held (session-scoped) by the one signer that publishes CRLs and refreshes
/// OCSP answers; the others take over when its session ends.
const LEADER_LOCK: i64 = WRITE_LOCK + 2;

/// The channel committed change-log appends are announced on.
pub const CHANGES_CHANNEL: &str = "cloudpki_changes";

const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
/// How long a writer waits for the write lock (or any row lock) before
/// giving up, like SQLite's busy timeout.
const LOCK_TIMEOUT: &str = "30s";

/// Readers and writers have pools of their own so that writers queueing for
/// the write lock never take the connections the snapshot follower and the
/// API's reads need. Writers are serialised anyway: a few suffice.
const READ_POOL_SIZE: u32 = 8;
const WRITE_POOL_SIZE: u32 = 4;
/// How long `begin` waits for a pooled connection (or for a new one to be
/// established) before answering `Unavailable`.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default TCP connect timeout when the URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnection back-off of the LISTEN thread.
const LISTEN_MIN_BACKOFF: Duration = Duration::from_millis(50);
const LISTEN_MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often the LISTEN thread looks at its stop flag.
const LISTEN_POLL: Duration = Duration::from_millis(100);
/// An idle LISTEN connection is probed this often, so a silently dead one
/// (no FIN ever arrived) is noticed and replaced.
const LISTEN_PING: Duration = Duration::from_secs(10);

/// The PostgreSQL store. Cheap to share (`Arc`); every transaction owns a
/// pooled connection for its lifetime.
pub struct PgStore {
    readers: r2d2::Pool<Manager>,
    writers: r2d2::Pool<Manager>,
    /// How every connection is made: one set of TLS settings for all.
    connector: PgConnector,
    /// The session holding [`LEADER_LOCK`] while this process leads; the
    /// server releases the lock by itself when the session dies.
    leader: std::sync::Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgStore {
    // The configuration may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/dbname[?…]`
    /// or the `key=value` form), brings the schema up to date and returns
    /// the store. Safe to call from several processes at once: migrations
    /// are serialised by an advisory lock and applied once. TLS follows
    /// libpq's `sslmode` and `sslrootcert` parameters (see [`super::pg_tls`]).
    pub fn connect(url: &str) -> Result<PgStore> {
        let mut connector = Self::check_url(url)?;
        let config = connector.config_mut();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("cloudpki");
        }
        // Migrate on a connection of our own: an unreachable server fails
        // here at once instead of after the pool's retries.
        let mut client = connector.connect()?;
        migrate(&mut client)?;
        drop(client);
        Ok(PgStore {
            readers: pool(&connector, READ_POOL_SIZE),
            writers: pool(&connector, WRITE_POOL_SIZE),
            connector,
            leader: std::sync::Mutex::new(None),
        })
    }

    /// Parses `url` and its TLS settings (reading the sslrootcert file)
    /// without connecting: `serve` checks its configuration with this
    /// before it binds a port.
    pub fn check_url(url: &str) -> Result<PgConnector> {
        PgConnector::parse(url).map_err(StoreError::Settings)
    }

    /// Follows commits of every process on this database: a thread with its
    /// own connection `LISTEN`s on [`CHANGES_CHANNEL`] and calls `on_change`
    /// for each notification (a burst counts once). When the connection
    /// drops it reconnects with back-off (up to 1 s) and calls `on_change`
    /// after every (re)connection, since commits made meanwhile were not
    /// announced: the follower catches up by sequence number. Returns when
    /// `stop` is set (within about 100 ms).
    pub fn listen(
        &self,
        on_change: Arc<dyn Fn() + Send + Sync>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        let connector = self.connector.clone();
        std::thread::Builder::new()
            .name("pg-listen".into())
            .spawn(move || listen_loop(&connector, &*on_change, &stop))
    }

    fn pool(&self, mode: TxMode) -> &r2d2::Pool<Manager> {
        match mode {
            TxMode::Read => &self.readers,
            TxMode::Write => &self.writers,
        }
    }
}

fn pool(connector: &PgConnector, size: u32) -> r2d2::Pool<Manager> {
    r2d2::Pool::builder()
        .max_size(size)
        // Connections are made on first use: `connect` has just proven the
        // server reachable, and an idle store holds no server processes.
        .min_idle(Some(0))
        // `begin` replaces a dead connection itself when its BEGIN fails,
        // which costs nothing, unlike a test query on every checkout.
        .test_on_check_out(false)
        .connection_timeout(POOL_TIMEOUT)
        .error_handler(Box::new(LogErrors))
        .build_unchecked(Manager {
            connector: connector.clone(),
        })
}

fn migrate(client: &mut Client) -> Result<()> {
    // One transaction under a transaction-scoped advisory lock: a process
    // connecting meanwhile waits, then finds the schema up to date. The
    // lock is released by COMMIT, by ROLLBACK or by the connection dying.
    client.batch_execute(&format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock({MIGRATE_LOCK});
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );"
    ))?;
    let run = |client: &mut Client| -> Result<()> {
        let version: i64 = client
            .query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])?
            .try_get(0)?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            client.batch_execute(sql)?;
            client.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&(i as i64 + 1)],
            )?;
        }
        Ok(())
    };
    match run(client) {
        Ok(()) => Ok(client.batch_execute("COMMIT")?),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

/// Connection failures (the server is down, restarting, unreachable, out of
/// connection slots, or the connection died): nothing was written.
fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // 08: connection exception; 57P01-03: admin/crash shutdown, cannot
        // connect now (starting up); 53300: too many connections.
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    // No answer from the server at all: connect or I/O failure.
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The error with its cause: tokio-postgres's Display names only the kind.
fn describe(e: &postgres::Error) -> String {
    if let Some(tls) = describe_tls_error(e) {
        return tls;
    }
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            let _ = write!(s, ": {detail}");
        }
        return s;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        if is_connection_error(&e) {
            return StoreError::Unavailable(describe(&e));
        }
        if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            // lock_timeout: the transaction is rolled back, nothing written.
            return StoreError::Unavailable(format!("the store is busy: {}", describe(&e)));
        }
        StoreError::Backend(describe(&e))
    }
}

fn pool_error(e: r2d2::Error) -> StoreError {
    StoreError::Unavailable(format!("no PostgreSQL connection: {e}"))
}

/// Logs the pool's failed connection attempts (r2d2 would use `log`).
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<postgres::Error> for LogErrors {
    fn handle_error(&self, error: postgres::Error) {
        tracing::warn!(error = %describe(&error), "PostgreSQL connection attempt failed");
    }
}

struct Manager {
    connector: PgConnector,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<Conn, postgres::Error> {
        Ok(Conn {
            client: Some(self.connector.connect()?),
            statements: HashMap::new(),
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), postgres::Error> {
        match conn.client.as_mut() {
            Some(c) => c.batch_execute("SELECT 1"),
            None => Ok(()), // has_broken says so
        }
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || conn.client.as_ref().is_none_or(Client::is_closed)
    }
}

/// A pooled connection and its prepared statements.
struct Conn {
    /// `None` only while being dropped.
    client: Option<Client>,
    /// Prepared once per connection: one round trip per statement after that.
    statements: HashMap<String, Statement>,
    /// Set when the connection may be in an unknown state (a failed
    /// ROLLBACK, an I/O error): the pool then discards it.
    broken: bool,
}

impl Conn {
    fn call<T>(&mut self, f: impl FnOnce(&mut Client) -> std::result::Result<T, postgres::Error>) -> Result<T> {
        let Some(client) = self.client.as_mut() else {
            self.broken = true;
            return Err(StoreError::Unavailable("connection closed".into()));
        };
        f(client).map_err(|e| {
            if is_connection_error(&e) {
                self.broken = true;
            }
            StoreError::from(e)
        })
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.call(|c| c.prepare(sql))?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Dropping a sync client blocks on its private runtime, which panics
        // on a tokio worker thread (a store dropped at shutdown, say): close
        // it on a thread of its own there.
        if let Some(client) = self.client.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("pg-close".into())
                    .spawn(move || drop(client));
            }
        }
    }
}

impl Store for PgStore {
    fn try_lead(&self) -> Result<bool> {
        let mut held = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        // Still leading only if the session that holds the lock is alive.
        if let Some(client) = held.as_mut() {
            if client.simple_query("SELECT 1").is_ok() {
                return Ok(true);
            }
            *held = None;
        }
        let mut client = self.connector.connect()?;
        let row = client.query_one(&format!("SELECT pg_try_advisory_lock({LEADER_LOCK})"), &[])?;
        if row.try_get::<_, bool>(0)? {
            *held = Some(client);
            return Ok(true);
        }
        Ok(false)
    }

    fn watch(
        &self,
        on_change: Arc<dyn Fn() + Send + Sync>,
        stop: Arc<AtomicBool>,
    ) -> Option<std::io::Result<JoinHandle<()>>> {
        Some(self.listen(on_change, stop))
    }

    fn begin(&self, mode: TxMode) -> Result<Box<dyn Tx + '_>> {
        let begin = match mode {
            TxMode::Read => BEGIN_READ.to_owned(),
            TxMode::Write => format!(
                "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE;
                 SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';
                 SELECT pg_advisory_xact_lock({WRITE_LOCK})"
            ),
        };
        let pool = self.pool(mode);
        let mut retries = pool.max_size();
        loop {
            let conn = pool.get().map_err(pool_error)?;
            let mut tx = PgTx {
                conn,
                open: true,
                failed: false,
                last_change: None,
            };
            match tx.conn.call(|c| c.batch_execute(&begin)) {
                Ok(()) => return Ok(Box::new(tx)),
                // A pooled connection the server closed while it was idle
                // (restart, failover, idle timeout) fails on first use;
                // nothing has happened yet, so take another one.
                Err(_) if tx.conn.broken && retries > 0 => retries -= 1,
                // Dropping `tx` rolls back what BEGIN may have opened.
                Err(e) => return Err(e),
            }
        }
    }
}

struct PgTx {
    conn: r2d2::PooledConnection<Manager>,
    open: bool,
    /// A statement failed: PostgreSQL has aborted the transaction (unlike
    /// SQLite, which rolls back only the statement), so it cannot commit.
    failed: bool,
    /// The last change-log sequence number appended, announced on commit.
    last_change: Option<i64>,
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if self.open && self.conn.call(|c| c.batch_execute("ROLLBACK")).is_err() {
            // Unknown state: never hand this connection to someone else.
            self.conn.broken = true;
        }
    }
}

impl PgTx {
    /// Notes a failed statement: the server has aborted the transaction.
    /// (Errors found client-side, converting rows, abort nothing.)
    fn check<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let r = self
            .conn
            .statement(sql)
            .and_then(|s| self.conn.call(|c| c.query(&s, params)));
        self.check(r)
    }

    fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let r = self
            .conn
            .statement(sql)
            .and_then(|s| self.conn.call(|c| c.query_opt(&s, params)));
        self.check(r)
    }

    fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        let r = self
            .conn
            .statement(sql)
            .and_then(|s| self.conn.call(|c| c.query_one(&s, params)));
        self.check(r)
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let r = self
            .conn
            .statement(sql)
            .and_then(|s| self.conn.call(|c| c.execute(&s, params)));
        self.check(r)
    }
}

fn map<T>(rows: &[Row], f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

fn get<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> Result<T> {
    Ok(r.try_get(i)?)
}

fn reason(r: &Row, i: usize) -> Result<Option<RevocationReason>> {
    super::reason_from_column(get(r, i)?)
}

fn count(r: &Row) -> Result<u64> {
    let n: i64 = get(r, 0)?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("count {n}")))
}

const CA_COLUMNS: &str = "id, common_name, issuer_id, status, doc, cert, chain, csr, revoked_at, revocation_reason, \
                          row_version, crl_number, ocsp_sha1, ocsp_sha256, ocsp_this_update";

fn presigned(r: &Row, first: usize) -> Result<Option<Presigned>> {
    let sha1: Option<Vec<u8>> = get(r, first)?;
    let sha256: Option<Vec<u8>> = get(r, first + 1)?;
    let this_update: Option<i64> = get(r, first + 2)?;
    Ok(match (sha1, sha256, this_update) {
        (Some(sha1), Some(sha256), Some(this_update)) => Some(Presigned {
            sha1,
            sha256,
            this_update,
        }),
        _ => None,
    })
}

fn ca_row(r: &Row) -> Result<CaRow> {
    let chain: Option<Vec<u8>> = get(r, 6)?;
    Ok(CaRow {
        id: get(r, 0)?,
        common_name: get(r, 1)?,
        issuer_id: get(r, 2)?,
        status: get(r, 3)?,
        doc: get(r, 4)?,
        cert: get(r, 5)?,
        chain: split_chain(chain.as_deref().unwrap_or_default()),
        csr: get(r, 7)?,
        revoked_at: get(r, 8)?,
        revocation_reason: reason(r, 9)?,
        row_version: get(r, 10)?,
        crl_number: get(r, 11)?,
        ocsp: presigned(r, 12)?,
    })
}

const LEAF_COLUMNS: &str =
    "seq, id, ca_id, serial, not_after, revoked_at, revocation_reason, doc, der, ocsp_sha1, ocsp_sha256, ocsp_this_update";
const LEAF_STATUS_COLUMNS: &str =
    "seq, id, ca_id, serial, not_after, revoked_at, revocation_reason, ocsp_sha1, ocsp_sha256, ocsp_this_update";

fn leaf_status_row(r: &Row) -> Result<LeafStatusRow> {
    Ok(LeafStatusRow {
        seq: get(r, 0)?,
        id: get(r, 1)?,
        ca_id: get(r, 2)?,
        serial: get(r, 3)?,
        not_after: get(r, 4)?,
        revoked_at: get(r, 5)?,
        revocation_reason: reason(r, 6)?,
        ocsp: presigned(r, 7)?,
    })
}

fn leaf_row(r: &Row) -> Result<LeafRow> {
    Ok(LeafRow {
        seq: get(r, 0)?,
        id: get(r, 1)?,
        ca_id: get(r, 2)?,
        serial: get(r, 3)?,
        not_after: get(r, 4)?,
        revoked_at: get(r, 5)?,
        revocation_reason: reason(r, 6)?,
        doc: get(r, 7)?,
        der: get(r, 8)?,
        ocsp: presigned(r, 9)?,
    })
}

fn audit_row(r: &Row) -> Result<AuditRow> {
    Ok(AuditRow {
        seq: get(r, 0)?,
        at: get(r, 1)?,
        actor: get(r, 2)?,
        activity: get(r, 3)?,
        target_type: get(r, 4)?,
        target_id: get(r, 5)?,
        result: get(r, 6)?,
        detail: get(r, 7)?,
        scope_tags: get(r, 8)?,
    })
}

fn token_row(r: &Row) -> Result<TokenRow> {
    Ok(TokenRow {
        jti: get(r, 0)?,
        principal: get(r, 1)?,
        issued_at: get(r, 2)?,
        expires_at: get(r, 3)?,
        permissions: get(r, 4)?,
        revoked_at: get(r, 5)?,
        revoked_by: get(r, 6)?,
    })
}

/// Appends a leaf selection's conditions to `sql` (which ends in a WHERE
/// clause). PostgreSQL cannot leave a parameter unused, and a disjunction
/// like `$1 IS NULL OR ca_id = $1` defeats the indexes, so each selection
/// is a statement shape of its own (prepared once per connection).
fn leaf_conditions<'a>(
    sql: &mut String,
    params: &mut Vec<&'a (dyn ToSql + Sync)>,
    ca_id: Option<&'a (dyn ToSql + Sync)>,
    filter: &'a LeafFilter,
) {
    if let Some(ca_id) = ca_id {
        params.push(ca_id);
        let _ = write!(sql, " AND ca_id = ${}", params.len());
    }
    match filter {
        LeafFilter::All => {}
        LeafFilter::Active { now } => {
            params.push(now);
            let _ = write!(sql, " AND revoked_at IS NULL AND not_after > ${}", params.len());
        }
        LeafFilter::Revoked => sql.push_str(" AND revoked_at IS NOT NULL"),
        LeafFilter::Expired { now } => {
            params.push(now);
            let _ = write!(sql, " AND revoked_at IS NULL AND not_after <= ${}", params.len());
        }
    }
}

impl Tx for PgTx {
    fn meta(&mut self, key: &str) -> Result<Option<String>> {
        let row = self.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?;
        row.as_ref().map(|r| get(r, 0)).transpose()
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn delete_meta(&mut self, key: &str) -> Result<()> {
        self.execute("DELETE FROM meta WHERE key = $1", &[&key])?;
        Ok(())
    }

    fn meta_with_prefix(&mut self, prefix: &str) -> Result<Vec<(String, String)>> {
        let rows = self.query(
            "SELECT key, value FROM meta WHERE substr(key, 1, length($1)) = $1 ORDER BY key",
            &[&prefix],
        )?;
        map(&rows, |r| Ok((get(r, 0)?, get(r, 1)?)))
    }

    fn sealed_keys(&mut self, table: SealedTable, after_owner: &str, limit: u32) -> Result<Vec<(String, Vec<u8>)>> {
        let sql = match table {
            SealedTable::CaKeys => {
                "SELECT id, sealed_key FROM cas WHERE deleted_at IS NULL AND sealed_key IS NOT NULL AND id COLLATE \"C\" > $1
                 ORDER BY id COLLATE \"C\" LIMIT $2"
            }
            SealedTable::OcspDelegateKeys => {
                "SELECT ca_id, sealed_key FROM ocsp_delegates WHERE ca_id COLLATE \"C\" > $1 ORDER BY ca_id COLLATE \"C\" LIMIT $2"
            }
        };
        let rows = self.query(sql, &[&after_owner, &i64::from(limit)])?;
        map(&rows, |r| Ok((get(r, 0)?, get(r, 1)?)))
    }

    fn replace_sealed_key(&mut self, table: SealedTable, owner: &str, sealed: &[u8]) -> Result<bool> {
        let sql = match table {
            SealedTable::CaKeys => {
                "UPDATE cas SET sealed_key = $1 WHERE id = $2 AND deleted_at IS NULL AND sealed_key IS NOT NULL"
            }
            SealedTable::OcspDelegateKeys => "UPDATE ocsp_delegates SET sealed_key = $1 WHERE ca_id = $2",
        };
        Ok(self.execute(sql, &[&sealed, &owner])? == 1)
    }

    fn ca(&mut self, id: &str) -> Result<Option<CaRow>> {
        let sql = format!("SELECT {CA_COLUMNS} FROM cas WHERE id = $1 AND deleted_at IS NULL");
        let row = self.query_opt(&sql, &[&id])?;
        row.as_ref().map(ca_row).transpose()
    }

    fn cas(&mut self) -> Result<Vec<CaRow>> {
        let sql = format!("SELECT {CA_COLUMNS} FROM cas WHERE deleted_at IS NULL ORDER BY created_order");
        let rows = self.query(&sql, &[])?;
        map(&rows, ca_row)
    }

    fn revoked_children(&mut self, issuer_id: &str) -> Result<Vec<CaRow>> {
        let sql = format!(
            "SELECT {CA_COLUMNS} FROM cas WHERE issuer_id = $1 AND revoked_at IS NOT NULL ORDER BY created_order"
        );
        let rows = self.query(&sql, &[&issuer_id])?;
        map(&rows, ca_row)
    }

    fn live_children(&mut self, issuer_id: &str) -> Result<u64> {
        let row = self.query_one(
            "SELECT count(*) FROM cas WHERE issuer_id = $1 AND deleted_at IS NULL",
            &[&issuer_id],
        )?;
        count(&row)
    }

    fn insert_ca(&mut self, row: &CaRow, sealed_key: Option<&[u8]>) -> Result<()> {
        // ON CONFLICT DO NOTHING on the live-name index instead of catching
        // the unique violation: an error would abort the whole PostgreSQL
        // transaction, while on SQLite the caller may go on. A duplicate id
        // still fails as a database error, as SQLite's primary key does.
        let n = self.execute(
            r#"INSERT INTO cas (id, common_name, issuer_id, status, doc, cert, chain, csr, sealed_key,
                              revoked_at, revocation_reason, row_version, crl_number, created_order,
                              ocsp_sha1, ocsp_sha256, ocsp_this_update)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                     (SELECT coalesce(max(created_order), 0) + 1 FROM cas), $14, $15, $16)
             ON CONFLICT (lower(common_name COLLATE "C")) WHERE deleted_at IS NULL DO NOTHING"#,
            &[
                &row.id,
                &row.common_name,
                &row.issuer_id,
                &row.status,
                &row.doc,
                &row.cert,
                &join_chain(&row.chain),
                &row.csr,
                &sealed_key,
                &row.revoked_at,
                &row.revocation_reason.map(|r| i64::from(r.code())),
                &row.row_version,
                &row.crl_number,
                &row.ocsp.as_ref().map(|o| o.sha1.as_slice()),
                &row.ocsp.as_ref().map(|o| o.sha256.as_slice()),
                &row.ocsp.as_ref().map(|o| o.this_update),
            ],
        )?;
        if n != 1 {
            return Err(StoreError::DuplicateCommonName(row.common_name.clone()));
        }
        Ok(())
    }

    fn update_ca(&mut self, row: &CaRow) -> Result<()> {
        let n = self.execute(
            "UPDATE cas SET status = $1, doc = $2, cert = $3, chain = $4, csr = $5, revoked_at = $6,
                            revocation_reason = $7, row_version = $8, ocsp_sha1 = $9, ocsp_sha256 = $10,
                            ocsp_this_update = $11
             WHERE id = $12 AND deleted_at IS NULL AND row_version = $13",
            &[
                &row.status,
                &row.doc,
                &row.cert,
                &join_chain(&row.chain),
                &row.csr,
                &row.revoked_at,
                &row.revocation_reason.map(|r| i64::from(r.code())),
                &row.row_version,
                &row.ocsp.as_ref().map(|o| o.sha1.as_slice()),
                &row.ocsp.as_ref().map(|o| o.sha256.as_slice()),
                &row.ocsp.as_ref().map(|o| o.this_update),
                &row.id,
                &(row.row_version - 1),
            ],
        )?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    fn delete_ca(&mut self, id: &str, at: i64) -> Result<()> {
        self.execute("DELETE FROM leaves WHERE ca_id = $1", &[&id])?;
        self.execute("DELETE FROM ocsp_delegates WHERE ca_id = $1", &[&id])?;
        let n = self.execute(
            "UPDATE cas SET deleted_at = $1, sealed_key = NULL, csr = NULL, row_version = row_version + 1
             WHERE id = $2 AND deleted_at IS NULL",
            &[&at, &id],
        )?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    fn sealed_key(&mut self, id: &str) -> Result<Option<Vec<u8>>> {
        let row = self.query_opt(
            "SELECT sealed_key FROM cas WHERE id = $1 AND deleted_at IS NULL",
            &[&id],
        )?;
        let r = row.as_ref().map(|r| get::<Option<Vec<u8>>>(r, 0)).transpose();
        Ok(r?.flatten())
    }

    fn reserve_crl_numbers(&mut self, id: &str, count: i64) -> Result<i64> {
        let row = self.query_opt(
            "UPDATE cas SET crl_number = crl_number + $1 WHERE id = $2 RETURNING crl_number",
            &[&count, &id],
        )?;
        match row {
            Some(r) => get(&r, 0),
            None => Err(StoreError::Backend(format!("no CA {id:?} to reserve CRL numbers for"))),
        }
    }

    fn crl_number(&mut self, ca_id: &str) -> Result<Option<i64>> {
        let row = self.query_opt("SELECT crl_number FROM crls WHERE ca_id = $1", &[&ca_id])?;
        row.as_ref().map(|r| get(r, 0)).transpose()
    }

    fn insert_leaf(&mut self, row: &LeafRow) -> Result<i64> {
        // See insert_ca: the engine retries a duplicate serial in the same
        // transaction, so the conflict must not abort it. Every unique index
        // is an arbiter: a duplicate id reads as a duplicate serial too, as
        // on SQLite (both are UNIQUE constraints there).
        let inserted = self.query_opt(
            "INSERT INTO leaves (id, ca_id, serial, not_after, revoked_at, revocation_reason, doc, der,
                                 ocsp_sha1, ocsp_sha256, ocsp_this_update)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT DO NOTHING RETURNING seq",
            &[
                &row.id,
                &row.ca_id,
                &row.serial,
                &row.not_after,
                &row.revoked_at,
                &row.revocation_reason.map(|r| i64::from(r.code())),
                &row.doc,
                &row.der,
                &row.ocsp.as_ref().map(|o| o.sha1.as_slice()),
                &row.ocsp.as_ref().map(|o| o.sha256.as_slice()),
                &row.ocsp.as_ref().map(|o| o.this_update),
            ],
        )?;
        match inserted {
            Some(r) => get(&r, 0),
            None => Err(StoreError::DuplicateSerial),
        }
    }

    fn leaf(&mut self, id: &str) -> Result<Option<LeafRow>> {
        let sql = format!("SELECT {LEAF_COLUMNS} FROM leaves WHERE id = $1");
        let row = self.query_opt(&sql, &[&id])?;
        row.as_ref().map(leaf_row).transpose()
    }

    fn leaves_by_serial(&mut self, ca_id: Option<&str>, serial: &str) -> Result<Vec<LeafRow>> {
        let rows = match ca_id {
            Some(ca_id) => self.query(
                &format!("SELECT {LEAF_COLUMNS} FROM leaves WHERE serial = $1 AND ca_id = $2 ORDER BY seq"),
                &[&serial, &ca_id],
            )?,
            None => self.query(
                &format!("SELECT {LEAF_COLUMNS} FROM leaves WHERE serial = $1 ORDER BY seq"),
                &[&serial],
            )?,
        };
        map(&rows, leaf_row)
    }

    fn leaves(&mut self, q: &LeafQuery) -> Result<Vec<LeafRow>> {
        let limit = i64::from(q.limit);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&q.after_seq, &limit];
        let mut sql = format!("SELECT {LEAF_COLUMNS} FROM leaves WHERE seq > $1");
        let ca_id = q.ca_id.as_ref().map(|c| c as &(dyn ToSql + Sync));
        leaf_conditions(&mut sql, &mut params, ca_id, &q.filter);
        sql.push_str(" ORDER BY seq LIMIT $2");
        let rows = self.query(&sql, &params)?;
        map(&rows, leaf_row)
    }

    fn count_leaves(&mut self, ca_id: Option<&str>, filter: LeafFilter) -> Result<u64> {
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let mut sql = "SELECT count(*) FROM leaves WHERE TRUE".to_owned();
        let ca_id = ca_id.as_ref().map(|c| c as &(dyn ToSql + Sync));
        leaf_conditions(&mut sql, &mut params, ca_id, &filter);
        let row = self.query_one(&sql, &params)?;
        count(&row)
    }

    fn revoke_leaf(&mut self, id: &str, at: i64, reason: RevocationReason, ocsp: &Presigned) -> Result<bool> {
        let n = self.execute(
            "UPDATE leaves SET revoked_at = $1, revocation_reason = $2, ocsp_sha1 = $3, ocsp_sha256 = $4,
                               ocsp_this_update = $5
             WHERE id = $6 AND revoked_at IS NULL",
            &[
                &at,
                &i64::from(reason.code()),
                &ocsp.sha1,
                &ocsp.sha256,
                &ocsp.this_update,
                &id,
            ],
        )?;
        Ok(n == 1)
    }

    fn set_leaf_ocsp(&mut self, id: &str, ocsp: &Presigned, seq: i64) -> Result<()> {
        self.execute(
            "UPDATE leaves SET ocsp_sha1 = $1, ocsp_sha256 = $2, ocsp_this_update = $3, ocsp_seq = $4 WHERE id = $5",
            &[&ocsp.sha1, &ocsp.sha256, &ocsp.this_update, &seq, &id],
        )?;
        Ok(())
    }

    fn leaves_due_for_ocsp(&mut self, signed_before: i64, limit: u32) -> Result<Vec<LeafStatusRow>> {
        // NULLS FIRST: SQLite sorts NULL (never signed) first, PostgreSQL last
        // by default. `seq` makes ties deterministic (SQLite's index order).
        let sql = format!(
            "SELECT {LEAF_STATUS_COLUMNS} FROM leaves
             WHERE ocsp_this_update IS NULL OR ocsp_this_update < $1
             ORDER BY ocsp_this_update NULLS FIRST, seq LIMIT $2"
        );
        let rows = self.query(&sql, &[&signed_before, &i64::from(limit)])?;
        map(&rows, leaf_status_row)
    }

    fn leaves_signed_at_seq(&mut self, ca_id: &str, seq: i64) -> Result<Vec<LeafStatusRow>> {
        let sql = format!("SELECT {LEAF_STATUS_COLUMNS} FROM leaves WHERE ocsp_seq = $1 AND ca_id = $2 ORDER BY seq");
        let rows = self.query(&sql, &[&seq, &ca_id])?;
        map(&rows, leaf_status_row)
    }

    fn leaf_status_page(&mut self, ca_id: &str, after_seq: i64, limit: u32) -> Result<Vec<LeafStatusRow>> {
        let sql =
            format!("SELECT {LEAF_STATUS_COLUMNS} FROM leaves WHERE ca_id = $1 AND seq > $2 ORDER BY seq LIMIT $3");
        let rows = self.query(&sql, &[&ca_id, &after_seq, &i64::from(limit)])?;
        map(&rows, leaf_status_row)
    }

    fn leaf_status(&mut self, id: &str) -> Result<Option<LeafStatusRow>> {
        let sql = format!("SELECT {LEAF_STATUS_COLUMNS} FROM leaves WHERE id = $1");
        let row = self.query_opt(&sql, &[&id])?;
        row.as_ref().map(leaf_status_row).transpose()
    }

    fn crl(&mut self, ca_id: &str) -> Result<Option<CrlRow>> {
        let row = self.query_opt(
            "SELECT ca_id, crl_number, this_update, next_update, der FROM crls WHERE ca_id = $1",
            &[&ca_id],
        )?;
        row.as_ref()
            .map(|r| {
                Ok(CrlRow {
                    ca_id: get(r, 0)?,
                    number: get(r, 1)?,
                    this_update: get(r, 2)?,
                    next_update: get(r, 3)?,
                    der: get(r, 4)?,
                })
            })
            .transpose()
    }

    fn roles(&mut self) -> Result<Vec<(String, String)>> {
        let rows = self.query("SELECT name, permissions FROM roles ORDER BY name", &[])?;
        map(&rows, |r| Ok((get(r, 0)?, get(r, 1)?)))
    }

    fn put_role(&mut self, name: &str, permissions: &str) -> Result<()> {
        self.execute(
            "INSERT INTO roles (name, permissions) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET permissions = excluded.permissions",
            &[&name, &permissions],
        )?;
        Ok(())
    }

    fn assignments(&mut self, principal: Option<&str>) -> Result<Vec<(String, String, String)>> {
        let rows = match principal {
            Some(p) => self.query(
                "SELECT principal, role, scope_tags FROM role_assignments WHERE principal = $1 ORDER BY principal, role",
                &[&p],
            )?,
            None => self.query(
                "SELECT principal, role, scope_tags FROM role_assignments ORDER BY principal, role",
                &[],
            )?,
        };
        map(&rows, |r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?)))
    }

    fn put_assignment(&mut self, principal: &str, role: &str, scope_tags: &str) -> Result<()> {
        self.execute(
            "INSERT INTO role_assignments (principal, role, scope_tags) VALUES ($1, $2, $3)
             ON CONFLICT (principal, role) DO UPDATE SET scope_tags = excluded.scope_tags",
            &[&principal, &role, &scope_tags],
        )?;
        Ok(())
    }

    fn append_audit(&mut self, e: &AuditRow) -> Result<i64> {
        let row = self.query_one(
            "INSERT INTO audit_events (at, actor, activity, target_type, target_id, result, detail, scope_tags)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
            &[
                &e.at,
                &e.actor,
                &e.activity,
                &e.target_type,
                &e.target_id,
                &e.result,
                &e.detail,
                &e.scope_tags,
            ],
        )?;
        get(&row, 0)
    }

    fn audit_events(&mut self, activity: Option<&str>, after_seq: i64, limit: u32) -> Result<Vec<AuditRow>> {
        const COLUMNS: &str = "seq, at, actor, activity, target_type, target_id, result, detail, scope_tags";
        let limit = i64::from(limit);
        let rows = match activity {
            Some(a) => self.query(
                &format!("SELECT {COLUMNS} FROM audit_events WHERE activity = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
                &[&a, &after_seq, &limit],
            )?,
            None => self.query(
                &format!("SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&after_seq, &limit],
            )?,
        };
        map(&rows, audit_row)
    }

    fn put_token(&mut self, t: &TokenRow) -> Result<()> {
        self.execute(
            "INSERT INTO api_tokens (jti, principal, issued_at, expires_at, permissions, revoked_at, revoked_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &t.jti,
                &t.principal,
                &t.issued_at,
                &t.expires_at,
                &t.permissions,
                &t.revoked_at,
                &t.revoked_by,
            ],
        )?;
        Ok(())
    }

    fn tokens(&mut self, expiring_after: i64) -> Result<Vec<TokenRow>> {
        let rows = self.query(
            "SELECT jti, principal, issued_at, expires_at, permissions, revoked_at, revoked_by FROM api_tokens
             WHERE expires_at > $1 OR expires_at = 0 ORDER BY issued_at DESC, jti",
            &[&expiring_after],
        )?;
        map(&rows, token_row)
    }

    fn revoke_token(&mut self, jti: &str, at: i64, by: &str) -> Result<bool> {
        let n = self.execute(
            "INSERT INTO api_tokens (jti, principal, issued_at, expires_at, permissions, revoked_at, revoked_by)
             VALUES ($1, '', 0, 0, '', $2, $3)
             ON CONFLICT (jti) DO UPDATE SET revoked_at = excluded.revoked_at, revoked_by = excluded.revoked_by
             WHERE api_tokens.revoked_at IS NULL",
            &[&jti, &at, &by],
        )?;
        Ok(n > 0)
    }

    fn token_revoked(&mut self, jti: &str) -> Result<bool> {
        let row = self.query_opt("SELECT revoked_at IS NOT NULL FROM api_tokens WHERE jti = $1", &[&jti])?;
        row.as_ref().map(|r| get(r, 0)).transpose().map(|v| v.unwrap_or(false))
    }

    fn ocsp_delegate(&mut self, ca_id: &str) -> Result<Option<DelegateRow>> {
        let row = self.query_opt(
            "SELECT cert, sealed_key, not_after FROM ocsp_delegates WHERE ca_id = $1",
            &[&ca_id],
        )?;
        row.as_ref()
            .map(|r| {
                Ok(DelegateRow {
                    cert: get(r, 0)?,
                    sealed_key: get(r, 1)?,
                    not_after: get(r, 2)?,
                })
            })
            .transpose()
    }

    fn put_ocsp_delegate(&mut self, ca_id: &str, cert: &[u8], sealed_key: &[u8], not_after: i64) -> Result<()> {
        self.execute(
            "INSERT INTO ocsp_delegates (ca_id, cert, sealed_key, not_after) VALUES ($1, $2, $3, $4)
             ON CONFLICT (ca_id) DO UPDATE SET cert = excluded.cert, sealed_key = excluded.sealed_key,
                 not_after = excluded.not_after",
            &[&ca_id, &cert, &sealed_key, &not_after],
        )?;
        Ok(())
    }

    fn put_crl(&mut self, crl: &CrlRow) -> Result<()> {
        self.execute(
            "INSERT INTO crls (ca_id, crl_number, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (ca_id) DO UPDATE SET crl_number = excluded.crl_number, this_update = excluded.this_update,
                 next_update = excluded.next_update, der = excluded.der
             WHERE excluded.crl_number > crls.crl_number",
            &[&crl.ca_id, &crl.number, &crl.this_update, &crl.next_update, &crl.der],
        )?;
        Ok(())
    }

    fn update_leaf_doc(&mut self, id: &str, doc: &str) -> Result<()> {
        let n = self.execute("UPDATE leaves SET doc = $1 WHERE id = $2", &[&doc, &id])?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    fn append_change(&mut self, at: i64, kind: ChangeKind, ca_id: &str, leaf_id: Option<&str>) -> Result<i64> {
        let row = self.query_one(
            "INSERT INTO changes (at, kind, ca_id, leaf_id) VALUES ($1, $2, $3, $4) RETURNING seq",
            &[&at, &kind.as_str(), &ca_id, &leaf_id],
        )?;
        let seq: i64 = get(&row, 0)?;
        self.last_change = Some(seq);
        Ok(seq)
    }

    fn last_change_seq(&mut self) -> Result<i64> {
        let row = self.query_one("SELECT coalesce(max(seq), 0) FROM changes", &[])?;
        get(&row, 0)
    }

    fn changes_since(&mut self, seq: i64, limit: u32) -> Result<Vec<Change>> {
        let rows = self.query(
            "SELECT seq, at, kind, ca_id, leaf_id FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&seq, &i64::from(limit)],
        )?;
        map(&rows, |r| {
            let kind: String = get(r, 2)?;
            Ok(Change {
                seq: get(r, 0)?,
                at: get(r, 1)?,
                kind: ChangeKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("change kind {kind}")))?,
                ca_id: get(r, 3)?,
                leaf_id: get(r, 4)?,
            })
        })
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.failed {
            // COMMIT of an aborted transaction "succeeds" as a ROLLBACK;
            // never let that pass for a commit. Drop rolls back.
            return Err(StoreError::Backend(
                "an earlier statement failed, so the transaction was rolled back".into(),
            ));
        }
        // The NOTIFY is queued by the transaction and delivered only if it
        // commits; one round trip for both. `seq` is a number, not input.
        let sql = match self.last_change {
            Some(seq) => format!("NOTIFY {CHANGES_CHANNEL}, '{seq}'; COMMIT"),
            None => "COMMIT".to_owned(),
        };
        match self.conn.call(|c| c.batch_execute(&sql)) {
            Ok(()) => {
                self.open = false;
                Ok(())
            }
            // The COMMIT may or may not have reached the server: "nothing
            // was written" (Unavailable) would be a lie here.
            Err(StoreError::Unavailable(m)) => Err(StoreError::Backend(format!(
                "connection lost during COMMIT; the outcome is unknown: {m}"
            ))),
            Err(e) => Err(e),
        }
    }
}

fn listen_loop(connector: &PgConnector, on_change: &(dyn Fn() + Send + Sync), stop: &AtomicBool) {
    let mut backoff = LISTEN_MIN_BACKOFF;
    while !stop.load(Ordering::Relaxed) {
        let connected = connector.connect().and_then(|mut client| {
            client.batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))?;
            Ok(client)
        });
        match connected {
            Ok(mut client) => {
                backoff = LISTEN_MIN_BACKOFF;
                // Commits made while no LISTEN was active went unannounced.
                on_change();
                follow(&mut client, on_change, stop);
            }
            Err(e) => {
                tracing::warn!(error = %describe(&e), "cannot listen for PostgreSQL change notifications");
                sleep_unless_stopped(backoff, stop);
                backoff = (backoff * 2).min(LISTEN_MAX_BACKOFF);
            }
        }
    }
}

/// Relays notifications until the connection fails or `stop` is set.
fn follow(client: &mut Client, on_change: &(dyn Fn() + Send + Sync), stop: &AtomicBool) {
    let mut idle = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let mut notifications = client.notifications();
        let next = notifications.timeout_iter(LISTEN_POLL).next();
        match next {
            Ok(Some(_)) => {
                // A burst is one wake-up: the follower reads every change
                // since its sequence number anyway.
                while let Ok(Some(_)) = notifications.iter().next() {}
                on_change();
                idle = Duration::ZERO;
            }
            Ok(None) => {
                drop(notifications);
                if client.is_closed() {
                    return;
                }
                idle += LISTEN_POLL;
                if idle >= LISTEN_PING {
                    if client.batch_execute("SELECT 1").is_err() {
                        return;
                    }
                    idle = Duration::ZERO;
                }
            }
            Err(e) => {
                tracing::warn!(error = %describe(&e), "PostgreSQL change notifications interrupted; reconnecting");
                return;
            }
        }
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let step = left.min(LISTEN_POLL);
        std::thread::sleep(step);
        left -= step;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Barrier};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::store::conformance::pg::{TempDb, TlsTarget};
    use crate::store::conformance::{ca, leaf};

    fn insert_ca(store: &PgStore, id: &str) {
        let mut tx = store.begin(TxMode::Write).unwrap();
        tx.insert_ca(&ca(id, &id.to_uppercase(), None), None).unwrap();
        tx.append_change(1, ChangeKind::CaCreated, id, None).unwrap();
        tx.commit().unwrap();
    }

    /// Two processes' writers commit while a third follows the change log:
    /// the follower sees every sequence number exactly once, in order,
    /// although a transaction with a lower number may still be open when a
    /// higher one would commit if writers were not serialised.
    #[test]
    fn concurrent_writers_follower_sees_every_seq_once_in_order() {
        const TXS: i64 = 60;
        let db = TempDb::new();
        let setup = PgStore::connect(&db.url).unwrap();
        insert_ca(&setup, "i");
        let done = Arc::new(AtomicBool::new(false));

        let follower = {
            let store = PgStore::connect(&db.url).unwrap();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut last = 0;
                loop {
                    // Read `done` before the snapshot: if the writers had
                    // finished by then, this read sees all their commits.
                    let finished = done.load(Ordering::SeqCst);
                    let changes = store.begin(TxMode::Read).unwrap().changes_since(last, 7).unwrap();
                    for c in &changes {
                        assert!(c.seq > last, "{} after {last}", c.seq);
                        last = c.seq;
                        seen.push(c.seq);
                    }
                    if changes.is_empty() {
                        if finished {
                            return seen;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        };
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let store = PgStore::connect(&db.url).unwrap();
                std::thread::spawn(move || {
                    let mut reserved = Vec::new();
                    for n in 0..TXS {
                        let mut tx = store.begin(TxMode::Write).unwrap();
                        for _ in 0..=(n % 3) {
                            tx.append_change(n, ChangeKind::LeafIssued, "i", None).unwrap();
                        }
                        // Hold the numbers a while before committing (and
                        // before the row lock below, which would serialise).
                        std::thread::sleep(Duration::from_micros(300 * (n as u64 % 3)));
                        // Each writer sees its predecessor's commit.
                        let number = tx.reserve_crl_numbers("i", 1).unwrap();
                        if (n + w) % 7 == 3 {
                            drop(tx); // rolled back: a gap in the sequence
                        } else {
                            tx.commit().unwrap();
                            reserved.push(number);
                        }
                    }
                    reserved
                })
            })
            .collect();
        let mut reserved: Vec<i64> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        let seen = follower.join().unwrap();

        let all: Vec<i64> = setup
            .begin(TxMode::Read)
            .unwrap()
            .changes_since(0, 100_000)
            .unwrap()
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(seen, all);
        assert!(all.len() > 2 * TXS as usize);
        reserved.sort_unstable();
        let expected: Vec<i64> = (1..=reserved.len() as i64).collect();
        assert_eq!(
            reserved, expected,
            "CRL numbers are handed out once each, without holes"
        );
    }

    #[test]
    fn listen_wakes_on_commits_of_another_store_and_reconnects() {
        let db = TempDb::new();
        let a = PgStore::connect(&db.url).unwrap();
        let b = PgStore::connect(&db.url).unwrap();
        let (sender, woken) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = a
            .listen(
                Arc::new(move || {
                    let _ = sender.send(());
                }),
                stop.clone(),
            )
            .unwrap();
        let wait = |what: &str| {
            woken
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no on_change {what}"));
        };
        let quiet = |what: &str| {
            assert!(
                woken.recv_timeout(Duration::from_millis(300)).is_err(),
                "on_change {what}"
            );
        };
        wait("after connecting");
        quiet("without a commit");

        insert_ca(&b, "i");
        wait("after a commit in another process");
        quiet("twice for one commit");
        {
            let mut tx = b.begin(TxMode::Write).unwrap();
            tx.append_change(2, ChangeKind::CaUpdated, "i", None).unwrap();
        }
        {
            let mut tx = b.begin(TxMode::Write).unwrap();
            tx.set_meta("k", "v").unwrap();
            tx.commit().unwrap();
        }
        quiet("for a rollback or a commit without changes");

        // The server drops the listening connection: it reconnects, and
        // says so (commits may have been missed meanwhile).
        let mut admin = db.client();
        let killed: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(killed, 1);
        wait("after reconnecting");
        insert_ca(&b, "j");
        wait("after a commit once reconnected");

        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap();
    }

    #[test]
    fn one_signer_leads_and_another_takes_over_when_it_dies() {
        let db = TempDb::new();
        let a = PgStore::connect(&db.url).unwrap();
        let b = PgStore::connect(&db.url).unwrap();
        assert!(a.try_lead().unwrap());
        assert!(!b.try_lead().unwrap(), "two leaders at once");
        assert!(a.try_lead().unwrap(), "the lead is kept while the session lives");
        assert!(!b.try_lead().unwrap());
        // The leader's process ends: its session, and so its lock, goes with it.
        drop(a);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !b.try_lead().unwrap() {
            assert!(Instant::now() < deadline, "the lead was not taken over");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn dropped_tx_leaves_nothing_and_releases_the_write_lock() {
        let db = TempDb::new();
        let a = PgStore::connect(&db.url).unwrap();
        let b = PgStore::connect(&db.url).unwrap();
        {
            let mut tx = a.begin(TxMode::Write).unwrap();
            tx.set_meta("k", "v").unwrap();
            tx.insert_ca(&ca("i", "I", None), Some(b"key")).unwrap();
            tx.insert_leaf(&leaf("l", "i", "01", 10)).unwrap();
            tx.append_change(1, ChangeKind::LeafIssued, "i", Some("l")).unwrap();
        }
        // Another process's writer does not wait for the dropped one.
        let started = Instant::now();
        let mut tx = b.begin(TxMode::Write).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(tx.meta("k").unwrap(), None);
        assert!(tx.ca("i").unwrap().is_none());
        assert!(tx.leaf("l").unwrap().is_none());
        assert_eq!(tx.last_change_seq().unwrap(), 0);
        drop(tx);
        // The connections went back to the pool clean: no transaction left
        // open on them (a BEGIN there would only warn and carry on in it).
        for n in 0..2 * WRITE_POOL_SIZE {
            let mut tx = a.begin(TxMode::Write).unwrap();
            tx.set_meta("n", &n.to_string()).unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(
            b.begin(TxMode::Read).unwrap().meta("n").unwrap(),
            Some((2 * WRITE_POOL_SIZE - 1).to_string())
        );
    }

    #[test]
    fn failed_statement_makes_commit_fail() {
        let db = TempDb::new();
        let s = PgStore::connect(&db.url).unwrap();
        let mut tx = s.begin(TxMode::Write).unwrap();
        tx.insert_ca(&ca("i", "I", None), None).unwrap();
        assert!(matches!(
            tx.insert_leaf(&leaf("l", "nobody", "01", 10)),
            Err(StoreError::Backend(_))
        ));
        assert!(tx.ca("i").is_err(), "PostgreSQL aborted the transaction");
        assert!(matches!(tx.commit(), Err(StoreError::Backend(_))));
        assert!(s.begin(TxMode::Read).unwrap().ca("i").unwrap().is_none());
        insert_ca(&s, "i");
    }

    #[test]
    fn concurrent_connect_migrates_once() {
        let db = TempDb::new();
        let barrier = Arc::new(Barrier::new(4));
        let connects: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    PgStore::connect(&url).map(drop)
                })
            })
            .collect();
        for c in connects {
            c.join().unwrap().unwrap();
        }
        let versions = || -> Vec<i64> {
            db.client()
                .query("SELECT version FROM schema_migrations ORDER BY version", &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        let expected: Vec<i64> = (1..=MIGRATIONS.len() as i64).collect();
        assert_eq!(versions(), expected);
        insert_ca(&PgStore::connect(&db.url).unwrap(), "i");
        assert_eq!(versions(), expected);
    }

    #[test]
    fn newer_schema_is_refused() {
        let db = TempDb::new();
        drop(PgStore::connect(&db.url).unwrap());
        let newer = MIGRATIONS.len() as i64 + 3;
        db.client()
            .execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&newer])
            .unwrap();
        match PgStore::connect(&db.url) {
            Err(StoreError::SchemaTooNew { found, supported }) => {
                assert_eq!((found, supported), (newer, MIGRATIONS.len() as i64));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unreachable_server_is_unavailable() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = Instant::now();
        match PgStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/postgres")) {
            Err(StoreError::Unavailable(m)) => assert!(m.contains("connect"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(
            PgStore::connect("postgres://host:notaport/db"),
            Err(StoreError::Settings(_))
        ));
    }

    #[test]
    fn connections_the_server_killed_are_replaced() {
        let db = TempDb::new();
        let s = PgStore::connect(&db.url).unwrap();
        insert_ca(&s, "i");
        {
            // Fill the read pool with idle connections.
            let open: Vec<_> = (0..READ_POOL_SIZE)
                .map(|_| {
                    let mut tx = s.begin(TxMode::Read).unwrap();
                    tx.cas().unwrap();
                    tx
                })
                .collect();
            drop(open);
        }
        let killed: i64 = db
            .client()
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(killed, i64::from(READ_POOL_SIZE) + 1);
        // Let the terminations land before the connections are used again.
        std::thread::sleep(Duration::from_millis(200));
        for _ in 0..3 {
            assert_eq!(s.begin(TxMode::Read).unwrap().cas().unwrap().len(), 1);
        }
        insert_ca(&s, "j");
        assert_eq!(s.begin(TxMode::Read).unwrap().cas().unwrap().len(), 2);
    }

    #[test]
    fn audit_truncate_is_refused() {
        let db = TempDb::new();
        let s = PgStore::connect(&db.url).unwrap();
        let mut tx = s.begin(TxMode::Write).unwrap();
        tx.append_audit(&AuditRow {
            seq: 0,
            at: 1,
            actor: "a".into(),
            activity: "x".into(),
            target_type: "ca".into(),
            target_id: "i".into(),
            result: "success".into(),
            detail: "{}".into(),
            scope_tags: "[]".into(),
        })
        .unwrap();
        tx.commit().unwrap();
        let err = db.client().batch_execute("TRUNCATE audit_events").unwrap_err();
        assert!(err.as_db_error().unwrap().message().contains("append-only"));
        assert_eq!(
            s.begin(TxMode::Read).unwrap().audit_events(None, 0, 10).unwrap().len(),
            1
        );
    }

    #[test]
    fn read_transactions_cannot_write() {
        let db = TempDb::new();
        let s = PgStore::connect(&db.url).unwrap();
        let mut tx = s.begin(TxMode::Read).unwrap();
        assert!(matches!(tx.set_meta("k", "v"), Err(StoreError::Backend(_))));
    }

    /// Whether every session of `db` opened by a store (application name
    /// cloudpki) is encrypted, and how many there are.
    fn store_sessions_encrypted(db: &TempDb) -> (bool, i64) {
        let row = db
            .client()
            .query_one(
                "SELECT coalesce(bool_and(s.ssl), false), count(*) FROM pg_stat_activity a
                 JOIN pg_stat_ssl s USING (pid)
                 WHERE a.datname = current_database() AND a.application_name = 'cloudpki'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    }

    fn connect_error(url: &str) -> String {
        match PgStore::connect(url) {
            Ok(_) => panic!("{url}: connected"),
            Err(e) => e.to_string(),
        }
    }

    /// A CA that signed nothing the server presents.
    fn other_ca(dir: &std::path::Path) -> String {
        let cnf = dir.join("openssl.cnf");
        std::fs::write(
            &cnf,
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = some other CA\n\
             [ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign\n",
        )
        .unwrap();
        let pem = dir.join("other-ca.pem");
        let out = std::process::Command::new("openssl")
            .args(["req", "-config"])
            .arg(&cnf)
            .args([
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-days", "1", "-extensions", "ca", "-keyout"])
            .arg(dir.join("other-ca.key"))
            .arg("-out")
            .arg(&pem)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        pem.display().to_string()
    }

    #[test]
    fn verify_full_connects_every_session_over_tls() {
        let db = TempDb::new();
        let t = TlsTarget::of(&db);
        for host in ["localhost", "127.0.0.1"] {
            let url = t.url(host, &format!("sslmode=verify-full&sslrootcert={}", t.ca));
            let s = PgStore::connect(&url).unwrap();
            assert_eq!(s.connector.ssl_mode(), super::super::SslMode::VerifyFull);
            // The pool, the leader-lock session and the LISTEN thread.
            insert_ca(&s, host);
            assert!(s.try_lead().unwrap());
            let (sender, woken) = mpsc::channel();
            let stop = Arc::new(AtomicBool::new(false));
            let listener = s
                .listen(
                    Arc::new(move || {
                        let _ = sender.send(());
                    }),
                    stop.clone(),
                )
                .unwrap();
            woken.recv_timeout(Duration::from_secs(10)).unwrap();
            let (encrypted, sessions) = store_sessions_encrypted(&db);
            assert!(encrypted, "{host}: a store session without TLS");
            assert!(sessions >= 3, "{host}: {sessions} sessions");
            stop.store(true, Ordering::Relaxed);
            listener.join().unwrap();
        }
    }

    #[test]
    fn verify_full_refuses_a_certificate_for_another_host() {
        let db = TempDb::new();
        let t = TlsTarget::of(&db);
        for host in ["127.0.0.2", "db.wrong.example"] {
            // The same server (hostaddr 127.0.0.1), named otherwise.
            let url = t.url(host, &format!("sslmode=verify-full&sslrootcert={}", t.ca));
            let e = connect_error(&url);
            assert!(
                e.contains("certificate does not match the host name") && e.contains(host),
                "{host}: {e}"
            );
            // verify-ca checks the chain only: the same name is fine there.
            let url = t.url(host, &format!("sslmode=verify-ca&sslrootcert={}", t.ca));
            drop(PgStore::connect(&url).unwrap());
        }
    }

    #[test]
    fn verify_ca_and_require_with_sslrootcert_refuse_another_ca() {
        let db = TempDb::new();
        let t = TlsTarget::of(&db);
        let dir = tempfile::tempdir().unwrap();
        let other = other_ca(dir.path());
        // require with an sslrootcert behaves as verify-ca, as in libpq.
        for mode in ["verify-ca", "verify-full", "require", "prefer"] {
            let e = connect_error(&t.url("localhost", &format!("sslmode={mode}&sslrootcert={other}")));
            assert!(e.contains("not issued by a CA in sslrootcert"), "{mode}: {e}");
        }
    }

    #[test]
    fn require_and_prefer_encrypt_without_verifying_and_disable_does_not() {
        let db = TempDb::new();
        let t = TlsTarget::of(&db);
        for (n, (params, encrypted)) in [("sslmode=require", true), ("", true), ("sslmode=disable", false)]
            .into_iter()
            .enumerate()
        {
            // A name the certificate does not carry: nothing is verified.
            let s = PgStore::connect(&t.url("db.wrong.example", params)).unwrap();
            insert_ca(&s, &format!("i{n}"));
            let (all, sessions) = store_sessions_encrypted(&db);
            assert!(sessions >= 1 && all == encrypted, "{params:?}: {sessions} sessions");
            drop(s);
            db.client()
                .batch_execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = 'cloudpki'",
                )
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn unreadable_sslrootcert_is_a_settings_error() {
        match PgStore::connect("postgres://u:secret@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
        {
            Err(StoreError::Settings(m)) => {
                assert!(m.contains("sslrootcert /nonexistent/ca.pem: cannot read it"), "{m}");
                assert!(!m.contains("secret"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }
}
