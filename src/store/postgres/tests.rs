//! PostgreSQL-only tests (the shared ones are in `store::conformance`).

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
        scope_tags: vec![],
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
    match PgStore::connect("postgres://u:secret@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem") {
        Err(StoreError::Settings(m)) => {
            assert!(m.contains("sslrootcert /nonexistent/ca.pem: cannot read it"), "{m}");
            assert!(!m.contains("secret"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

/// A column value as either backend stores it, for comparing raw rows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    fn of_sqlite(v: rusqlite::types::Value) -> Cell {
        use rusqlite::types::Value as V;
        match v {
            V::Null => Cell::Null,
            V::Integer(n) => Cell::Int(n),
            V::Text(s) => Cell::Text(s),
            V::Blob(b) => Cell::Bytes(b),
            V::Real(r) => panic!("a REAL in the store: {r}"),
        }
    }

    fn of_pg(row: &Row, i: usize) -> Cell {
        use ::postgres::types::Type;
        let ty = row.columns()[i].type_();
        let cell = if *ty == Type::INT8 {
            row.get::<_, Option<i64>>(i).map(Cell::Int)
        } else if *ty == Type::TEXT {
            row.get::<_, Option<String>>(i).map(Cell::Text)
        } else if *ty == Type::BYTEA {
            row.get::<_, Option<Vec<u8>>>(i).map(Cell::Bytes)
        } else {
            panic!("column {} of type {ty}", row.columns()[i].name())
        };
        cell.unwrap_or(Cell::Null)
    }

    /// The value to bind to a parameter of PostgreSQL type `ty`, refusing
    /// any conversion: the row goes in verbatim or not at all.
    fn to_pg(&self, ty: &::postgres::types::Type, column: &str) -> Box<dyn ToSql + Sync> {
        use ::postgres::types::Type;
        match (self, ty) {
            (Cell::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
            (Cell::Null, t) if *t == Type::TEXT => Box::new(None::<String>),
            (Cell::Null, t) if *t == Type::BYTEA => Box::new(None::<Vec<u8>>),
            (Cell::Int(n), t) if *t == Type::INT8 => Box::new(*n),
            (Cell::Text(s), t) if *t == Type::TEXT => Box::new(s.clone()),
            (Cell::Bytes(b), t) if *t == Type::BYTEA => Box::new(b.clone()),
            (cell, t) => panic!("{column}: {cell:?} into a {t} column"),
        }
    }
}

/// Every row of `table`, each as column name → value, keyed by column `key`.
type RawRows = std::collections::BTreeMap<String, std::collections::BTreeMap<String, Cell>>;

fn key_text(cell: &Cell) -> String {
    match cell {
        Cell::Int(n) => format!("{n:020}"),
        Cell::Text(s) => s.clone(),
        other => panic!("key {other:?}"),
    }
}

fn sqlite_rows(db: &rusqlite::Connection, table: &str, key: &str) -> RawRows {
    let mut stmt = db.prepare(&format!("SELECT * FROM {table}")).unwrap();
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let rows = stmt
        .query_map([], |r| {
            (0..names.len())
                .map(|i| r.get::<_, rusqlite::types::Value>(i).map(Cell::of_sqlite))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap();
    rows.map(|cells| {
        let row: std::collections::BTreeMap<String, Cell> = names.iter().cloned().zip(cells.unwrap()).collect();
        (key_text(&row[key]), row)
    })
    .collect()
}

fn pg_rows(db: &mut Client, table: &str, key: &str) -> RawRows {
    db.query(&format!("SELECT * FROM {table}"), &[])
        .unwrap()
        .iter()
        .map(|r| {
            let row: std::collections::BTreeMap<String, Cell> = (0..r.len())
                .map(|i| (r.columns()[i].name().to_owned(), Cell::of_pg(r, i)))
                .collect();
            (key_text(&row[key]), row)
        })
        .collect()
}

/// Inserts `rows` into `table` as they are, `seq` included.
fn pg_insert(db: &mut Client, table: &str, rows: &RawRows) {
    for row in rows.values() {
        let names: Vec<&str> = row.keys().map(String::as_str).collect();
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        // An identity column takes the stored value only when told to.
        let overriding = if row.contains_key("seq") {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        let stmt = db
            .prepare(&format!(
                "INSERT INTO {table} ({}){overriding} VALUES ({})",
                names.join(", "),
                placeholders.join(", ")
            ))
            .unwrap();
        let values: Vec<Box<dyn ToSql + Sync>> = row
            .iter()
            .zip(stmt.params())
            .map(|((name, cell), ty)| cell.to_pg(ty, name))
            .collect();
        db.execute(&stmt, &refs(&values)).unwrap();
    }
    if rows.values().any(|r| r.contains_key("seq")) {
        // As the store itself would have left it: the next row follows.
        db.batch_execute(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'seq'), (SELECT max(seq) FROM {table}))"
        ))
        .unwrap();
    }
}

/// The tables migration 8 rewrites, with the column each is keyed by.
const TYPED_TABLES: [(&str, &str); 3] = [("cas", "id"), ("leaves", "id"), ("audit_events", "seq")];

/// A store the previous release left on PostgreSQL (schema 7, Graph JSON
/// documents, audit scope tags as JSON) migrates exactly as the same store
/// on SQLite does: the v7 rows of the committed SQLite fixture
/// (tests/fixtures/store-v7, made by that release) are copied verbatim into
/// a PostgreSQL database stopped before migration 8, then both are opened.
#[test]
fn v7_store_migrates_like_sqlite() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v7/data/cloudpki.db");
    let fixture_bytes = std::fs::read(&fixture).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let v7_path = dir.path().join("v7.db");
    let sqlite_path = dir.path().join("cloudpki.db");
    std::fs::write(&v7_path, &fixture_bytes).unwrap();
    std::fs::write(&sqlite_path, &fixture_bytes).unwrap();

    // The v7 rows, read from a copy opened read-only.
    let v7 = rusqlite::Connection::open_with_flags(&v7_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let version: i64 = v7.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 7, "the fixture is a schema-7 store");
    let old: Vec<RawRows> = TYPED_TABLES
        .iter()
        .map(|(table, key)| sqlite_rows(&v7, table, key))
        .collect();
    drop(v7);
    let (old_cas, old_leaves, old_audit) = (&old[0], &old[1], &old[2]);
    assert_eq!(
        (old_cas.len(), old_leaves.len(), old_audit.len()),
        (5, 3, 13),
        "the fixture's rows"
    );
    assert!(
        old_cas
            .values()
            .all(|r| matches!(&r["doc"], Cell::Text(d) if d.starts_with('{'))),
        "v7 CAs carry Graph JSON documents"
    );
    assert!(old_audit
        .values()
        .all(|r| matches!(&r["scope_tags"], Cell::Text(t) if t.starts_with('['))));

    // The same rows in a PostgreSQL store at schema 7 ("DROP COLUMN doc"
    // is in migration 8 only), then migrated by opening it.
    let db = TempDb::new();
    super::create_before_migration(&db.url, "DROP COLUMN doc").unwrap();
    {
        let mut admin = db.client();
        let version: i64 = admin
            .query_one("SELECT max(version) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(version, 7);
        for ((table, _), rows) in TYPED_TABLES.iter().zip(&old) {
            pg_insert(&mut admin, table, rows);
        }
    }
    let pg = PgStore::connect(&db.url).unwrap();
    let sqlite = crate::store::SqliteStore::open(&sqlite_path).unwrap();

    // Raw rows: the same columns with the same values on both backends,
    // tombstones and columns no row struct reads included.
    let sqlite_db = rusqlite::Connection::open(&sqlite_path).unwrap();
    let mut pg_db = db.client();
    for (table, key) in TYPED_TABLES {
        let s = sqlite_rows(&sqlite_db, table, key);
        let p = pg_rows(&mut pg_db, table, key);
        assert_eq!(
            s.keys().collect::<Vec<_>>(),
            p.keys().collect::<Vec<_>>(),
            "{table}: the same rows"
        );
        for (k, row) in &s {
            let pg_row = &p[k];
            let columns: std::collections::BTreeSet<&String> = row.keys().chain(pg_row.keys()).collect();
            let differ: Vec<String> = columns
                .into_iter()
                .filter(|c| row.get(*c) != pg_row.get(*c))
                .map(|c| format!("{c}: PostgreSQL {:?}, SQLite {:?}", pg_row.get(c), row.get(c)))
                .collect();
            assert!(differ.is_empty(), "{table} {k}:\n{}", differ.join("\n"));
        }
        assert!(
            !s.values().chain(p.values()).any(|r| r.contains_key("doc")),
            "{table}.doc is gone"
        );
    }

    // What the store reads.
    let mut ptx = pg.begin(TxMode::Read).unwrap();
    let mut stx = sqlite.begin(TxMode::Read).unwrap();
    for id in old_cas.keys() {
        assert_eq!(ptx.ca(id).unwrap(), stx.ca(id).unwrap(), "CA {id}");
    }
    let cas = ptx.cas().unwrap();
    assert_eq!(cas, stx.cas().unwrap());
    assert_eq!(cas.len(), 4, "the deleted CA is not live");
    let root = cas.iter().find(|c| c.common_name == "Fixture Root").unwrap();
    // The deleted CA, as its issuer's CRL reads it.
    let tombstones = ptx.revoked_children(&root.id).unwrap();
    assert_eq!(tombstones, stx.revoked_children(&root.id).unwrap());
    assert_eq!(tombstones.len(), 1);
    assert_eq!(tombstones[0].display_name, "Fixture Deleted");
    assert_eq!(
        tombstones[0].revocation_reason,
        Some(RevocationReason::CessationOfOperation)
    );
    for id in old_leaves.keys() {
        let leaf = ptx.leaf(id).unwrap();
        assert!(leaf.is_some(), "leaf {id}");
        assert_eq!(leaf, stx.leaf(id).unwrap(), "leaf {id}");
    }
    let audit = ptx.audit_events(None, 0, 1000).unwrap();
    assert_eq!(audit, stx.audit_events(None, 0, 1000).unwrap());
    let seqs: Vec<String> = audit.iter().map(|e| format!("{:020}", e.seq)).collect();
    assert_eq!(seqs, old_audit.keys().cloned().collect::<Vec<_>>(), "audit seqs kept");

    // And the values are the right ones.
    assert_eq!(root.scope_tags, ["0", "7"]);
    assert_eq!(root.ekus, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    assert_eq!(root.description.as_deref(), Some("a \"quoted\" root"));
    assert_eq!(root.ca_type, "rootCertificationAuthority");
    assert_eq!(root.subject_name, "C=NL,L=Delft,O=Fixture Org,CN=Fixture Root");
    assert_eq!(root.created_at, 1_796_523_088); // 2026-12-06T02:11:28Z
    assert_eq!((root.validity_years, root.version), (10, 1));
    let issuing = cas.iter().find(|c| c.common_name == "Fixture Issuing").unwrap();
    assert_eq!(issuing.display_name, "Issuing (display)");
    assert_eq!(issuing.scope_tags, ["7"]);
    assert_eq!(issuing.issuer_common_name.as_deref(), Some("Fixture Root"));
    let external = cas.iter().find(|c| c.common_name == "Fixture External").unwrap();
    assert_eq!(
        (external.key_algorithm.as_str(), external.hash_algorithm.as_str()),
        ("eCP384", "sha384")
    );
    let leaves: Vec<LeafRow> = old_leaves.keys().map(|id| ptx.leaf(id).unwrap().unwrap()).collect();
    let described = leaves
        .iter()
        .find(|l| l.device_name.as_deref() == Some("laptop-1"))
        .unwrap();
    assert_eq!(described.device_platform, "Windows10AndLater");
    assert_eq!(described.user_principal_name.as_deref(), Some("ada@example.test"));
    assert_eq!(described.key_usages, ["DigitalSignature"]);
    assert_eq!(described.ekus, ["1.3.6.1.5.5.7.3.2"]);
    assert_eq!(described.not_before, 1_796_522_489); // 2026-12-06T02:01:29Z
    assert_eq!(described.issuer_name, "CN=Fixture Issuing");
    let revoked: Vec<&LeafRow> = leaves.iter().filter(|l| l.revoked_at.is_some()).collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].revocation_reason, Some(RevocationReason::KeyCompromise));
    assert_eq!(revoked[0].device_platform, "Unknown");
    assert_eq!(audit[0].scope_tags, ["0", "7"]);
    assert!(audit.iter().all(|e| !e.scope_tags.is_empty()));
    drop((ptx, stx));

    // The deleted CA's row stays, filled in too.
    let deleted = pg_db
        .query_one(
            "SELECT display_name, deleted_at, scope_tags FROM cas WHERE common_name = 'Fixture Deleted'",
            &[],
        )
        .unwrap();
    assert_eq!(deleted.get::<_, String>(0), "Fixture Deleted");
    assert!(deleted.get::<_, Option<i64>>(1).is_some());
    assert_eq!(deleted.get::<_, String>(2), "0");
    let json_tags: i64 = pg_db
        .query_one("SELECT count(*) FROM audit_events WHERE scope_tags LIKE '[%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(json_tags, 0);

    // The migrated store takes new rows (the identity sequences were set
    // as the old release would have left them).
    let issuing_id = issuing.id.clone();
    let mut tx = pg.begin(TxMode::Write).unwrap();
    let next = leaf("after-migration", &issuing_id, "7F", 10);
    assert_eq!(tx.insert_leaf(&next).unwrap(), 4);
    let mut event = audit[0].clone();
    event.scope_tags = vec![];
    assert_eq!(tx.append_audit(&event).unwrap(), 14);
    tx.commit().unwrap();

    assert_eq!(
        std::fs::read(&fixture).unwrap(),
        fixture_bytes,
        "the fixture is untouched"
    );
}
