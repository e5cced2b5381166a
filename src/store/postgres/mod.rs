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

use super::migrations::MIGRATIONS;
use super::pg_tls::{describe_tls_error, PgConnector};
use super::rows::{Dialect, Value, CHALLENGE_COLUMNS, ENROLMENT_REQUEST_COLUMNS, PROFILE_COLUMNS};
use super::{
    AuditRow, CaRow, ChallengeRow, Change, ChangeKind, CrlRow, CrlScopeKey, DelegateRow, EnrolmentRequestRow,
    LeafFilter, LeafQuery, LeafRow, LeafStatusRow, Presigned, ProfileRow, ResponderCertRow, ResponderRow, Result,
    RevocationReason, SealedTable, Store, StoreError, TokenRow, Tx, TxMode,
};

mod rows;
use rows::*;

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
    migrate_to(client, MIGRATIONS.len())
}

/// Tests: creates the schema in the (empty) database at `url` as an
/// earlier release left it, before the first migration whose SQL contains
/// `marker` (so the test does not depend on that migration's position).
#[cfg(test)]
pub(crate) fn create_before_migration(url: &str, marker: &str) -> Result<()> {
    let upto = MIGRATIONS
        .iter()
        .position(|m| m.postgres.contains(marker))
        .unwrap_or_else(|| panic!("no migration mentions {marker:?}"));
    migrate_to(&mut PgStore::check_url(url)?.connect()?, upto)
}

/// Applies the migrations not yet applied among the first `upto`.
fn migrate_to(client: &mut Client, upto: usize) -> Result<()> {
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
        for (i, m) in MIGRATIONS.iter().enumerate().take(upto).skip(version as usize) {
            client.batch_execute(m.postgres)?;
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
            SealedTable::ScepRaKeys => {
                "SELECT id, sealed_key FROM scep_ras WHERE id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\" LIMIT $2"
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
            SealedTable::ScepRaKeys => "UPDATE scep_ras SET sealed_key = $1 WHERE id = $2",
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

    fn revoked_in_partition(&mut self, ca_id: &str, partition: u32) -> Result<Vec<(String, i64, i64)>> {
        let rows = self.query(
            "SELECT serial, revoked_at, not_after FROM leaves
             WHERE ca_id = $1 AND crl_partition = $2 AND revoked_at IS NOT NULL",
            &[&ca_id, &i64::from(partition)],
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    fn crl_scope_digest(&mut self, ca_id: &str, partition: u32) -> Result<Option<(i64, i64)>> {
        let rows = self.query(
            "SELECT entries, digest FROM crl_scope_digests WHERE ca_id = $1 AND crl_partition = $2",
            &[&ca_id, &i64::from(partition)],
        )?;
        rows.first().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    fn set_crl_scope_digest(&mut self, ca_id: &str, partition: u32, entries: i64, digest: i64) -> Result<()> {
        self.execute(
            "INSERT INTO crl_scope_digests (ca_id, crl_partition, entries, digest) VALUES ($1, $2, $3, $4)
             ON CONFLICT (ca_id, crl_partition) DO UPDATE SET entries = excluded.entries, digest = excluded.digest",
            &[&ca_id, &i64::from(partition), &entries, &digest],
        )?;
        Ok(())
    }

    fn add_to_crl_scope_digest(&mut self, ca_id: &str, partition: u32, serial_digest: i64) -> Result<()> {
        self.execute(
            "UPDATE crl_scope_digests SET entries = entries + 1, digest = digest + $1
             WHERE ca_id = $2 AND crl_partition = $3",
            &[&serial_digest, &ca_id, &i64::from(partition)],
        )?;
        Ok(())
    }

    fn live_children(&mut self, issuer_id: &str) -> Result<u64> {
        let row = self.query_one(
            "SELECT count(*) FROM cas WHERE issuer_id = $1 AND deleted_at IS NULL",
            &[&issuer_id],
        )?;
        count(&row)
    }

    fn insert_ca(&mut self, row: &CaRow, sealed_key: Option<&[u8]>) -> Result<()> {
        let order: i64 = get(
            &self.query_one("SELECT coalesce(max(created_order), 0) + 1 FROM cas", &[])?,
            0,
        )?;
        let mut values = vec![
            ("id", Value::Text(Some(row.id.clone()))),
            ("sealed_key", Value::Bytes(sealed_key.map(<[u8]>::to_vec))),
            ("crl_number", Value::Int(Some(row.crl_number))),
            ("created_order", Value::Int(Some(order))),
        ];
        values.extend(crate::store::rows::ca_values(row));
        let (mut sql, binds) = crate::store::rows::insert_sql(Dialect::Postgres, "cas", values);
        // ON CONFLICT DO NOTHING on the live-name index instead of catching
        // the unique violation: an error would abort the whole PostgreSQL
        // transaction, while on SQLite the caller may go on. A duplicate id
        // still fails as a database error, as SQLite's primary key does.
        sql.push_str(r#" ON CONFLICT (lower(common_name COLLATE "C")) WHERE deleted_at IS NULL DO NOTHING"#);
        let binds = boxed(binds);
        let n = self.execute(&sql, &refs(&binds))?;
        if n != 1 {
            return Err(StoreError::DuplicateCommonName(row.common_name.clone()));
        }
        Ok(())
    }

    fn update_ca(&mut self, row: &CaRow) -> Result<()> {
        let (sql, binds) = crate::store::rows::update_ca_sql(Dialect::Postgres, row);
        let binds = boxed(binds);
        let n = self.execute(&sql, &refs(&binds))?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    fn delete_ca(&mut self, id: &str, at: i64) -> Result<()> {
        self.execute("DELETE FROM leaves WHERE ca_id = $1", &[&id])?;
        self.execute("DELETE FROM ocsp_delegates WHERE ca_id = $1", &[&id])?;
        self.execute("DELETE FROM scep_ras WHERE ca_id = $1", &[&id])?;
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

    fn crl_numbers(&mut self, ca_id: &str) -> Result<Vec<(CrlScopeKey, i64)>> {
        let rows = self.query(
            "SELECT crl_partition, delta, crl_number FROM crls WHERE ca_id = $1 ORDER BY crl_partition, delta",
            &[&ca_id],
        )?;
        rows.iter()
            .map(|r| {
                let scope = CrlScopeKey {
                    partition: partition(get(r, 0)?)?,
                    delta: get::<i64>(r, 1)? != 0,
                };
                Ok((scope, get(r, 2)?))
            })
            .collect()
    }

    fn insert_leaf(&mut self, row: &LeafRow) -> Result<i64> {
        // See insert_ca: the engine retries a duplicate serial in the same
        // transaction, so the conflict must not abort it. Every unique index
        // is an arbiter: a duplicate id reads as a duplicate serial too, as
        // on SQLite (both are UNIQUE constraints there).
        let (mut sql, binds) =
            crate::store::rows::insert_sql(Dialect::Postgres, "leaves", crate::store::rows::leaf_values(row));
        sql.push_str(" ON CONFLICT DO NOTHING RETURNING seq");
        let binds = boxed(binds);
        match self.query_opt(&sql, &refs(&binds))? {
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

    fn leaf_segment(&mut self, segment: &crate::store::rows::Segment, offset: u64, limit: u64) -> Result<Vec<LeafRow>> {
        let mut out = Vec::new();
        for (sql, binds) in segment.statements(Dialect::Postgres, offset, limit) {
            if out.len() as u64 >= limit {
                break;
            }
            let binds = boxed(binds);
            let rows = self.query(&sql, &refs(&binds))?;
            out.extend(map(&rows, leaf_row)?);
        }
        out.truncate(limit as usize);
        Ok(out)
    }

    fn count_leaf_segment(&mut self, segment: &crate::store::rows::Segment) -> Result<u64> {
        let (sql, binds) = segment.count_sql(Dialect::Postgres);
        let binds = boxed(binds);
        count(&self.query_one(&sql, &refs(&binds))?)
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
                               ocsp_this_update = $5, ocsp_next_update = $6
             WHERE id = $7 AND revoked_at IS NULL",
            &[
                &at,
                &i64::from(reason.code()),
                &ocsp.sha1,
                &ocsp.stored_sha256(),
                &ocsp.this_update,
                &ocsp.next_update,
                &id,
            ],
        )?;
        Ok(n == 1)
    }

    fn set_leaf_ocsp(&mut self, id: &str, ocsp: &Presigned, seq: i64) -> Result<()> {
        self.execute(
            "UPDATE leaves SET ocsp_sha1 = $1, ocsp_sha256 = $2, ocsp_this_update = $3, ocsp_next_update = $4,
                               ocsp_seq = $5
             WHERE id = $6",
            &[
                &ocsp.sha1,
                &ocsp.stored_sha256(),
                &ocsp.this_update,
                &ocsp.next_update,
                &seq,
                &id,
            ],
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

    fn crl(&mut self, ca_id: &str, scope: CrlScopeKey) -> Result<Option<CrlRow>> {
        let row = self.query_opt(
            "SELECT ca_id, crl_number, this_update, next_update, der FROM crls
             WHERE ca_id = $1 AND crl_partition = $2 AND delta = $3",
            &[&ca_id, &i64::from(scope.partition), &i64::from(scope.delta)],
        )?;
        row.as_ref()
            .map(|r| {
                Ok(CrlRow {
                    ca_id: get(r, 0)?,
                    scope,
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
        let (mut sql, binds) =
            crate::store::rows::insert_sql(Dialect::Postgres, "audit_events", crate::store::rows::audit_values(e));
        sql.push_str(" RETURNING seq");
        let binds = boxed(binds);
        let row = self.query_one(&sql, &refs(&binds))?;
        get(&row, 0)
    }

    fn audit_events(&mut self, activity: Option<&str>, after_seq: i64, limit: u32) -> Result<Vec<AuditRow>> {
        const COLUMNS: &str = crate::store::rows::AUDIT_COLUMNS;
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

    fn request_responder(&mut self, row: &ResponderRow) -> Result<bool> {
        let n = self.execute(
            "INSERT INTO responders (id, name, public_key, requested_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO NOTHING",
            &[&row.id, &row.name, &row.public_key, &row.requested_at],
        )?;
        Ok(n == 1)
    }

    fn responders(&mut self) -> Result<Vec<ResponderRow>> {
        let rows = self.query(
            "SELECT id, name, public_key, requested_at, approved_at, approved_by, removed_at, last_seen_at
             FROM responders ORDER BY requested_at, id",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(ResponderRow {
                    id: get(r, 0)?,
                    name: get(r, 1)?,
                    public_key: get(r, 2)?,
                    requested_at: get(r, 3)?,
                    approved_at: get(r, 4)?,
                    approved_by: get(r, 5)?,
                    removed_at: get(r, 6)?,
                    last_seen_at: get(r, 7)?,
                })
            })
            .collect()
    }

    fn responder_seen(&mut self, id: &str, at: i64) -> Result<bool> {
        let n = self.execute("UPDATE responders SET last_seen_at = $1 WHERE id = $2", &[&at, &id])?;
        Ok(n == 1)
    }

    fn set_responder_state(&mut self, row: &ResponderRow) -> Result<()> {
        let n = self.execute(
            "UPDATE responders SET approved_at = $1, approved_by = $2, removed_at = $3 WHERE id = $4",
            &[&row.approved_at, &row.approved_by, &row.removed_at, &row.id],
        )?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    fn responder_cert(&mut self, responder_id: &str, ca_id: &str, ca_version: i64) -> Result<Option<ResponderCertRow>> {
        let row = self.query_opt(
            "SELECT cert, not_after FROM responder_certs
             WHERE responder_id = $1 AND ca_id = $2 AND ca_version = $3",
            &[&responder_id, &ca_id, &ca_version],
        )?;
        row.as_ref()
            .map(|r| {
                Ok(ResponderCertRow {
                    responder_id: responder_id.to_owned(),
                    ca_id: ca_id.to_owned(),
                    ca_version,
                    cert: get(r, 0)?,
                    not_after: get(r, 1)?,
                })
            })
            .transpose()
    }

    fn put_responder_cert(&mut self, row: &ResponderCertRow) -> Result<()> {
        self.execute(
            "INSERT INTO responder_certs (responder_id, ca_id, ca_version, cert, not_after)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (responder_id, ca_id, ca_version) DO UPDATE SET cert = excluded.cert,
                 not_after = excluded.not_after",
            &[
                &row.responder_id,
                &row.ca_id,
                &row.ca_version,
                &row.cert,
                &row.not_after,
            ],
        )?;
        Ok(())
    }

    fn put_crl(&mut self, crl: &CrlRow) -> Result<()> {
        self.execute(
            "INSERT INTO crls (ca_id, crl_partition, delta, crl_number, this_update, next_update, der)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (ca_id, crl_partition, delta) DO UPDATE SET crl_number = excluded.crl_number,
                 this_update = excluded.this_update, next_update = excluded.next_update, der = excluded.der
             WHERE excluded.crl_number > crls.crl_number",
            &[
                &crl.ca_id,
                &i64::from(crl.scope.partition),
                &i64::from(crl.scope.delta),
                &crl.number,
                &crl.this_update,
                &crl.next_update,
                &crl.der,
            ],
        )?;
        Ok(())
    }

    fn insert_profile(&mut self, p: &ProfileRow) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO enrolment_profiles ({PROFILE_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            ),
            &[
                &p.id,
                &p.ca_id,
                &p.name,
                &p.key_types,
                &p.cn_suffixes,
                &p.dns_suffixes,
                &p.ekus,
                &p.validity_days,
                &p.renewal_days,
                &p.requires_approval,
                &p.created_at,
                &p.created_by,
                &p.removed_at,
                &p.key_usages,
            ],
        )?;
        Ok(())
    }

    fn profile(&mut self, id: &str) -> Result<Option<ProfileRow>> {
        let row = self.query_opt(
            &format!("SELECT {PROFILE_COLUMNS} FROM enrolment_profiles WHERE id = $1"),
            &[&id],
        )?;
        row.as_ref().map(profile_row).transpose()
    }

    fn profiles(&mut self, ca_id: Option<&str>) -> Result<Vec<ProfileRow>> {
        let rows = self.query(
            &format!(
                "SELECT {PROFILE_COLUMNS} FROM enrolment_profiles
                 WHERE removed_at IS NULL AND ($1::TEXT IS NULL OR ca_id = $1) ORDER BY created_at, id"
            ),
            &[&ca_id],
        )?;
        map(&rows, profile_row)
    }

    fn remove_profile(&mut self, id: &str, at: i64) -> Result<bool> {
        let n = self.execute(
            "UPDATE enrolment_profiles SET removed_at = $1 WHERE id = $2 AND removed_at IS NULL",
            &[&at, &id],
        )?;
        Ok(n == 1)
    }

    fn insert_challenge(&mut self, c: &ChallengeRow) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO enrolment_challenges ({CHALLENGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                &c.id,
                &c.profile_id,
                &c.secret_hash,
                &c.uses_left,
                &c.expires_at,
                &c.device_id,
                &c.subject,
                &c.created_at,
                &c.created_by,
            ],
        )?;
        Ok(())
    }

    fn challenge_by_hash(&mut self, secret_hash: &[u8]) -> Result<Option<ChallengeRow>> {
        let row = self.query_opt(
            &format!("SELECT {CHALLENGE_COLUMNS} FROM enrolment_challenges WHERE secret_hash = $1"),
            &[&secret_hash],
        )?;
        row.as_ref()
            .map(|r| {
                Ok(ChallengeRow {
                    id: get(r, 0)?,
                    profile_id: get(r, 1)?,
                    secret_hash: get(r, 2)?,
                    uses_left: get(r, 3)?,
                    expires_at: get(r, 4)?,
                    device_id: get(r, 5)?,
                    subject: get(r, 6)?,
                    created_at: get(r, 7)?,
                    created_by: get(r, 8)?,
                })
            })
            .transpose()
    }

    fn spend_challenge(&mut self, id: &str) -> Result<bool> {
        let n = self.execute(
            "UPDATE enrolment_challenges SET uses_left = uses_left - 1 WHERE id = $1 AND uses_left > 0",
            &[&id],
        )?;
        Ok(n == 1)
    }

    fn scep_ras(&mut self, ca_id: &str, now: i64) -> Result<Vec<(String, DelegateRow)>> {
        let rows = self.query(
            "SELECT id, cert, sealed_key, not_after FROM scep_ras WHERE ca_id = $1 AND not_after > $2
             ORDER BY not_after DESC, id",
            &[&ca_id, &now],
        )?;
        map(&rows, |r| {
            Ok((
                get(r, 0)?,
                DelegateRow {
                    cert: get(r, 1)?,
                    sealed_key: get(r, 2)?,
                    not_after: get(r, 3)?,
                },
            ))
        })
    }

    fn put_scep_ra(&mut self, id: &str, ca_id: &str, ra: &DelegateRow, now: i64) -> Result<()> {
        self.execute(
            "DELETE FROM scep_ras WHERE ca_id = $1 AND not_after <= $2",
            &[&ca_id, &now],
        )?;
        self.execute(
            "INSERT INTO scep_ras (id, ca_id, cert, sealed_key, not_after) VALUES ($1, $2, $3, $4, $5)",
            &[&id, &ca_id, &ra.cert, &ra.sealed_key, &ra.not_after],
        )?;
        Ok(())
    }

    fn remember_nonce(&mut self, ca_id: &str, nonce: &[u8], expires_at: i64, now: i64) -> Result<bool> {
        self.execute("DELETE FROM enrolment_nonces WHERE expires_at < $1", &[&now])?;
        let n = self.execute(
            "INSERT INTO enrolment_nonces (ca_id, nonce, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (ca_id, nonce) DO NOTHING",
            &[&ca_id, &nonce, &expires_at],
        )?;
        Ok(n == 1)
    }

    fn put_enrolment(&mut self, leaf_id: &str, profile_id: &str, transaction_id: &str, at: i64) -> Result<()> {
        self.execute(
            "INSERT INTO enrolments (leaf_id, profile_id, transaction_id, at) VALUES ($1, $2, $3, $4)",
            &[&leaf_id, &profile_id, &transaction_id, &at],
        )?;
        Ok(())
    }

    fn enrolment_profile(&mut self, leaf_id: &str) -> Result<Option<String>> {
        let row = self.query_opt("SELECT profile_id FROM enrolments WHERE leaf_id = $1", &[&leaf_id])?;
        row.as_ref().map(|r| get(r, 0)).transpose()
    }

    fn enrolled_leaf(&mut self, ca_id: &str, transaction_id: &str) -> Result<Option<String>> {
        let row = self.query_opt(
            "SELECT e.leaf_id FROM enrolments e JOIN leaves l ON l.id = e.leaf_id
             WHERE e.transaction_id = $1 AND l.ca_id = $2 ORDER BY e.at DESC LIMIT 1",
            &[&transaction_id, &ca_id],
        )?;
        row.as_ref().map(|r| get(r, 0)).transpose()
    }

    fn insert_enrolment_request(&mut self, q: &EnrolmentRequestRow) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO enrolment_requests ({ENROLMENT_REQUEST_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &[
                &q.id,
                &q.ca_id,
                &q.transaction_id,
                &q.profile_id,
                &q.csr,
                &q.device_id,
                &q.requested_at,
                &q.state,
                &q.decided_at,
                &q.decided_by,
                &q.leaf_id,
                &q.reason,
            ],
        )?;
        Ok(())
    }

    fn enrolment_request(&mut self, id: &str) -> Result<Option<EnrolmentRequestRow>> {
        let row = self.query_opt(
            &format!("SELECT {ENROLMENT_REQUEST_COLUMNS} FROM enrolment_requests WHERE id = $1"),
            &[&id],
        )?;
        row.as_ref().map(enrolment_request_row).transpose()
    }

    fn enrolment_request_by_transaction(
        &mut self,
        ca_id: &str,
        transaction_id: &str,
    ) -> Result<Option<EnrolmentRequestRow>> {
        let row = self.query_opt(
            &format!(
                "SELECT {ENROLMENT_REQUEST_COLUMNS} FROM enrolment_requests WHERE ca_id = $1 AND transaction_id = $2"
            ),
            &[&ca_id, &transaction_id],
        )?;
        row.as_ref().map(enrolment_request_row).transpose()
    }

    fn enrolment_requests(&mut self, ca_id: &str, limit: u32) -> Result<Vec<EnrolmentRequestRow>> {
        let rows = self.query(
            &format!(
                "SELECT {ENROLMENT_REQUEST_COLUMNS} FROM enrolment_requests WHERE ca_id = $1
                 ORDER BY requested_at DESC, id LIMIT $2"
            ),
            &[&ca_id, &i64::from(limit)],
        )?;
        map(&rows, enrolment_request_row)
    }

    fn forget_enrolment_request(&mut self, id: &str) -> Result<()> {
        self.execute("DELETE FROM enrolment_requests WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn decide_enrolment_request(&mut self, q: &EnrolmentRequestRow) -> Result<bool> {
        let n = self.execute(
            "UPDATE enrolment_requests SET state = $1, decided_at = $2, decided_by = $3, leaf_id = $4, reason = $5
             WHERE id = $6 AND state = 'pending'",
            &[&q.state, &q.decided_at, &q.decided_by, &q.leaf_id, &q.reason, &q.id],
        )?;
        Ok(n == 1)
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

    fn revocation_changes_after(&mut self, seq: i64) -> Result<u64> {
        let row = self.query_one(
            "SELECT count(*) FROM changes WHERE seq > $1 AND kind IN ('leafRevoked', 'caUpdated')",
            &[&seq],
        )?;
        count(&row)
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

fn profile_row(r: &postgres::Row) -> Result<ProfileRow> {
    Ok(ProfileRow {
        id: get(r, 0)?,
        ca_id: get(r, 1)?,
        name: get(r, 2)?,
        key_types: get(r, 3)?,
        cn_suffixes: get(r, 4)?,
        dns_suffixes: get(r, 5)?,
        ekus: get(r, 6)?,
        validity_days: get(r, 7)?,
        renewal_days: get(r, 8)?,
        requires_approval: get(r, 9)?,
        created_at: get(r, 10)?,
        created_by: get(r, 11)?,
        removed_at: get(r, 12)?,
        key_usages: get(r, 13)?,
    })
}

fn enrolment_request_row(r: &postgres::Row) -> Result<EnrolmentRequestRow> {
    Ok(EnrolmentRequestRow {
        id: get(r, 0)?,
        ca_id: get(r, 1)?,
        transaction_id: get(r, 2)?,
        profile_id: get(r, 3)?,
        csr: get(r, 4)?,
        device_id: get(r, 5)?,
        requested_at: get(r, 6)?,
        state: get(r, 7)?,
        decided_at: get(r, 8)?,
        decided_by: get(r, 9)?,
        leaf_id: get(r, 10)?,
        reason: get(r, 11)?,
    })
}

#[cfg(test)]
mod tests;
