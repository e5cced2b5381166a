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
