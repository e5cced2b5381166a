//! The storage conformance suite: every backend must pass the same tests,
//! so the domain can rely on one behaviour whichever store it is given.
//!
//! Each test is a function over a [`Harness`]; `suite!` instantiates all of
//! them once per backend (`store::conformance::sqlite::*`,
//! `store::conformance::postgres::*`). PostgreSQL tests run on a fresh
//! database each, on the server `CLOUDPKI_TEST_POSTGRES` names or, when it
//! is unset, on a throwaway cluster started once per test process (see
//! [`pg::server_url`]).

use std::path::PathBuf;

use super::{
    AuditRow, CaRow, ChallengeRow, ChangeKind, CrlRow, CrlScopeKey, DelegateRow, EnrolmentRequestRow, LeafFilter,
    LeafQuery, LeafRow, LeafStatusRow, PgStore, Presigned, ProfileRow, ResponderCertRow, ResponderRow,
    RevocationReason, SealedTable, SqliteStore, Store, StoreError, TokenRow, TxMode,
};

/// A backend under test.
pub(crate) trait Harness {
    fn store(&self) -> &dyn Store;
    /// Another store on the same database, as another process opens it.
    fn reopen(&self) -> Box<dyn Store>;
    /// Runs SQL behind the store's back; `Err` carries the database's message.
    fn raw(&self, sql: &str) -> std::result::Result<(), String>;
}

struct SqliteHarness {
    // Field order is drop order: the store closes before the directory goes.
    store: SqliteStore,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SqliteHarness {
    /// A database file, as in production (an in-memory store has no
    /// separate readers and cannot be opened twice).
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloudpki.db");
        SqliteHarness {
            store: SqliteStore::open(&path).unwrap(),
            path,
            _dir: dir,
        }
    }
}

impl Harness for SqliteHarness {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn reopen(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(&self.path).unwrap())
    }

    fn raw(&self, sql: &str) -> std::result::Result<(), String> {
        let conn = rusqlite::Connection::open(&self.path).map_err(|e| e.to_string())?;
        conn.execute_batch(sql).map_err(|e| e.to_string())
    }
}

struct PgHarness {
    store: PgStore,
    db: pg::TempDb,
}

impl PgHarness {
    fn new() -> Self {
        let db = pg::TempDb::new();
        PgHarness {
            store: PgStore::connect(&db.url).unwrap(),
            db,
        }
    }
}

impl Harness for PgHarness {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn reopen(&self) -> Box<dyn Store> {
        Box::new(PgStore::connect(&self.db.url).unwrap())
    }

    fn raw(&self, sql: &str) -> std::result::Result<(), String> {
        self.db.client().batch_execute(sql).map_err(|e| pg::message(&e))
    }
}

/// The PostgreSQL server the tests use, and throwaway databases on it.
pub(crate) mod pg {
    use std::process::Command;
    use std::sync::OnceLock;

    use ::postgres::Client;

    use crate::store::PgConnector;

    const PORT: &str = "55432";

    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();

    /// The URL of the test server's `postgres` database: `CLOUDPKI_TEST_POSTGRES`,
    /// or a cluster in `target/pg-test` started once per test process
    /// (left running for the next run; `scripts/pg-throwaway.sh stop
    /// target/pg-test` stops it). Panics, failing the test, when there is
    /// no PostgreSQL: these tests are never skipped silently.
    pub(crate) fn server_url() -> String {
        match SERVER.get_or_init(start) {
            Ok(url) => url.clone(),
            Err(e) => panic!("{e}"),
        }
    }

    fn start() -> Result<String, String> {
        if let Ok(url) = std::env::var("CLOUDPKI_TEST_POSTGRES") {
            if !url.is_empty() {
                return Ok(url);
            }
        }
        let root = env!("CARGO_MANIFEST_DIR");
        let script = format!("{root}/scripts/pg-throwaway.sh");
        let dir = format!("{root}/target/pg-test");
        let out = Command::new("bash")
            .args([script.as_str(), "start", dir.as_str(), PORT])
            .output()
            .map_err(|e| format!("cannot run {script}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(url) if out.status.success() => Ok(url.trim().to_owned()),
            _ => Err(format!(
                "the PostgreSQL tests need a server: CLOUDPKI_TEST_POSTGRES is unset and \
                 `scripts/pg-throwaway.sh start target/pg-test {PORT}` failed ({}):\n{}\n\
                 Install PostgreSQL (scripts/install-test-deps.sh) or set CLOUDPKI_TEST_POSTGRES \
                 to a server URL (postgres://user@host:port/postgres).",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// The database error's own message, which tokio-postgres's Display omits.
    pub(crate) fn message(e: &::postgres::Error) -> String {
        match (e.as_db_error(), std::error::Error::source(e)) {
            (Some(db), _) => format!("{e}: {}", db.message()),
            (None, Some(cause)) => format!("{e}: {cause}"),
            (None, None) => e.to_string(),
        }
    }

    /// A plain client with the URL's TLS settings (the throwaway cluster's
    /// URL asks for `sslmode=verify-full`).
    fn connect(url: &str) -> Result<Client, ::postgres::Error> {
        let connector = PgConnector::parse(url).unwrap_or_else(|e| panic!("the test PostgreSQL URL: {e}"));
        connector.connect()
    }

    /// What the TLS tests need to build URLs of their own to a test database:
    /// its user, port, name and the CA of the server (the URL's
    /// `sslrootcert`; scripts/pg-throwaway.sh makes a server certificate for
    /// `localhost` and `127.0.0.1`).
    pub(crate) struct TlsTarget {
        pub(crate) user: String,
        pub(crate) port: u16,
        pub(crate) dbname: String,
        pub(crate) ca: String,
    }

    impl TlsTarget {
        pub(crate) fn of(db: &TempDb) -> TlsTarget {
            let (base, query) = db.url.split_once('?').unwrap_or((&db.url, ""));
            let ca = query
                .split('&')
                .find_map(|p| p.strip_prefix("sslrootcert="))
                .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
                .unwrap_or_else(|| {
                    panic!(
                        "the TLS tests need a server with TLS: CLOUDPKI_TEST_POSTGRES must be a URL \
                         with sslrootcert= (scripts/pg-throwaway.sh prints one)"
                    )
                });
            let config: ::postgres::Config = base.parse().unwrap();
            TlsTarget {
                user: config.get_user().unwrap_or("postgres").to_owned(),
                port: config.get_ports().first().copied().unwrap_or(5432),
                dbname: config.get_dbname().unwrap_or_default().to_owned(),
                ca,
            }
        }

        /// A URL to the database on 127.0.0.1 that names the server `host`
        /// (for TLS) and adds `params`.
        pub(crate) fn url(&self, host: &str, params: &str) -> String {
            let sep = if params.is_empty() { "" } else { "&" };
            format!(
                "postgres://{}@{host}:{}/{}?hostaddr=127.0.0.1{sep}{params}",
                self.user, self.port, self.dbname
            )
        }
    }

    /// `url` with its database name replaced.
    fn with_dbname(url: &str, name: &str) -> String {
        let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
        let host_start = base.find("://").map_or(0, |i| i + 3);
        let base = match base[host_start..].find('/') {
            Some(i) => &base[..host_start + i],
            None => base,
        };
        match query {
            Some(q) => format!("{base}/{name}?{q}"),
            None => format!("{base}/{name}"),
        }
    }

    /// A database of its own for one test, dropped (with any connection
    /// left to it) when the value is.
    pub(crate) struct TempDb {
        pub(crate) url: String,
        admin: String,
        name: String,
    }

    impl TempDb {
        pub(crate) fn new() -> TempDb {
            let admin = server_url();
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut c = connect(&admin)
                .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL at {admin}: {}", message(&e)));
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {}", message(&e)));
            TempDb {
                url: with_dbname(&admin, &name),
                admin,
                name,
            }
        }

        /// A plain connection to the database, behind any store's back.
        pub(crate) fn client(&self) -> Client {
            connect(&self.url).unwrap()
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            if let Ok(mut c) = connect(&self.admin) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            }
        }
    }

    #[test]
    fn with_dbname_replaces_only_the_database() {
        assert_eq!(with_dbname("postgres://u@h:1/postgres", "t"), "postgres://u@h:1/t");
        assert_eq!(
            with_dbname("postgres://u:p@h/db?sslmode=disable", "t"),
            "postgres://u:p@h/t?sslmode=disable"
        );
        assert_eq!(with_dbname("postgresql://h:5", "t"), "postgresql://h:5/t");
    }
}

mod paging;
use paging::ordered_leaf_pages_match_a_full_sort;

pub(crate) fn ca(id: &str, cn: &str, issuer: Option<&str>) -> CaRow {
    CaRow {
        id: id.into(),
        common_name: cn.into(),
        issuer_id: issuer.map(Into::into),
        status: "active".into(),
        ca_type: "rootCertificationAuthority".into(),
        display_name: format!("{cn} display"),
        description: Some("a \"quoted\" description".into()),
        organization_name: Some("Org".into()),
        organization_unit: None,
        country_name: Some("NL".into()),
        state_name: None,
        locality_name: Some("Delft".into()),
        subject_name: format!("CN={cn}"),
        key_algorithm: "eCP256".into(),
        hash_algorithm: "sha256".into(),
        key_platform: "software".into(),
        validity_years: 5,
        ekus: vec!["1.3.6.1.5.5.7.3.1".into(), "1.3.6.1.5.5.7.3.2".into()],
        scope_tags: vec!["0".into(), "7".into()],
        created_at: 1_700_000_000,
        modified_at: 1_700_000_001,
        version: 1,
        issuer_common_name: issuer.map(|i| format!("{i} CN")),
        root_common_name: Some("root".into()),
        issuer_cert_url: None,
        cert: Some(vec![1, 2, 3]),
        chain: vec![vec![4], vec![5, 6]],
        csr: None,
        revoked_at: None,
        revocation_reason: None,
        row_version: 1,
        crl_number: 0,
        ocsp: None,
        crl_partitions: 4,
        delta_crls: true,
    }
}

pub(crate) fn leaf(id: &str, ca: &str, serial: &str, not_after: i64) -> LeafRow {
    LeafRow {
        seq: 0,
        id: id.into(),
        ca_id: ca.into(),
        ca_version: 1,
        serial: serial.into(),
        subject_name: format!("CN={id}"),
        issuer_name: "CN=issuer".into(),
        not_before: not_after - 100,
        not_after,
        thumbprint: format!("AB{serial}"),
        revoked_at: None,
        revocation_reason: None,
        device_name: Some("device".into()),
        user_principal_name: None,
        device_id: Some("d-1".into()),
        user_id: None,
        device_platform: "Windows10AndLater".into(),
        key_usages: vec!["digitalSignature".into(), "keyEncipherment".into()],
        ekus: vec!["1.3.6.1.5.5.7.3.2".into()],
        der: vec![0x30],
        ocsp: None,
        crl_partition: 2,
    }
}

fn presigned(n: u8, this_update: i64) -> Presigned {
    Presigned {
        sha1: vec![n],
        // Both shapes round-trip: with and without a SHA-256 answer.
        sha256: (n % 2 == 1).then(|| vec![n, n]),
        this_update,
        next_update: (n % 2 == 0).then_some(this_update + 100),
    }
}

fn audit(at: i64, activity: &str) -> AuditRow {
    AuditRow {
        seq: 0,
        at,
        actor: "alice".into(),
        activity: activity.into(),
        target_type: "ca".into(),
        target_id: format!("t{at}"),
        result: "success".into(),
        detail: "{}".into(),
        scope_tags: vec![format!("{at}"), "0".into()],
    }
}

fn ids<T>(rows: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    rows.iter().map(|r| id(r).to_owned()).collect()
}

fn leaf_ids(rows: &[LeafRow]) -> Vec<String> {
    ids(rows, |r| &r.id)
}

fn status_ids(rows: &[LeafStatusRow]) -> Vec<String> {
    ids(rows, |r| &r.id)
}

fn ca_ids(rows: &[CaRow]) -> Vec<String> {
    ids(rows, |r| &r.id)
}

fn meta_roundtrip(h: &dyn Harness) {
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    assert_eq!(tx.meta("k").unwrap(), None);
    tx.set_meta("k", "v1").unwrap();
    tx.set_meta("other", "x").unwrap();
    tx.set_meta("k", "v2").unwrap();
    assert_eq!(tx.meta("k").unwrap().as_deref(), Some("v2"));
    tx.commit().unwrap();
    let other = h.reopen();
    let mut tx = other.begin(TxMode::Read).unwrap();
    assert_eq!(tx.meta("k").unwrap().as_deref(), Some("v2"));
    assert_eq!(tx.meta("other").unwrap().as_deref(), Some("x"));
    assert_eq!(tx.meta("missing").unwrap(), None);
}

fn ca_roundtrip_and_unique_common_name(h: &dyn Harness) {
    let s = h.store();
    let mut tx = s.begin(TxMode::Write).unwrap();
    let mut root = ca("a", "Root", None);
    root.csr = Some(vec![9]);
    root.revoked_at = Some(7);
    root.revocation_reason = Some(RevocationReason::Superseded);
    root.crl_number = 3;
    root.ocsp = Some(presigned(1, 5));
    tx.insert_ca(&root, Some(b"k")).unwrap();
    for cn in ["root", "ROOT", "Root"] {
        assert!(
            matches!(tx.insert_ca(&ca("b", cn, None), None), Err(StoreError::DuplicateCommonName(ref n)) if n == cn),
            "{cn}"
        );
    }
    // lower() folds ASCII only, on both backends: É and é differ.
    tx.insert_ca(&ca("e1", "École", None), None).unwrap();
    tx.insert_ca(&ca("e2", "éCOLE", None), None).unwrap();
    assert!(matches!(
        tx.insert_ca(&ca("e3", "ÉCOLE", None), None),
        Err(StoreError::DuplicateCommonName(_))
    ));
    // The transaction goes on after a refused insert.
    assert_eq!(tx.ca("a").unwrap().unwrap(), root);
    let mut plain = ca("c", "Plain", Some("a"));
    plain.chain = Vec::new();
    plain.cert = None;
    tx.insert_ca(&plain, None).unwrap();
    assert_eq!(tx.ca("c").unwrap().unwrap(), plain);
    assert_eq!(tx.sealed_key("a").unwrap().as_deref(), Some(&b"k"[..]));
    assert_eq!(tx.sealed_key("c").unwrap(), None);
    assert_eq!(tx.sealed_key("missing").unwrap(), None);
    assert_eq!(tx.ca("missing").unwrap(), None);
    tx.commit().unwrap();

    let other = h.reopen();
    let mut tx = other.begin(TxMode::Write).unwrap();
    assert_eq!(tx.ca("a").unwrap().unwrap(), root);
    assert!(matches!(
        tx.insert_ca(&ca("z", "rOOT", None), None),
        Err(StoreError::DuplicateCommonName(_))
    ));
    drop(tx);
    // A duplicate id is a plain database error, not a name conflict.
    let mut tx = other.begin(TxMode::Write).unwrap();
    assert!(matches!(
        tx.insert_ca(&ca("a", "Other", None), None),
        Err(StoreError::Backend(_))
    ));
}

fn rollback_on_drop(h: &dyn Harness) {
    let s = h.store();
    {
        let mut tx = s.begin(TxMode::Write).unwrap();
        tx.set_meta("k", "v").unwrap();
        tx.insert_ca(&ca("a", "Root", None), Some(b"k")).unwrap();
        tx.insert_leaf(&leaf("l", "a", "01", 100)).unwrap();
        tx.append_change(1, ChangeKind::CaCreated, "a", None).unwrap();
        tx.append_audit(&audit(1, "createCa")).unwrap();
    }
    drop(s.begin(TxMode::Read).unwrap());
    // The next writer is not kept waiting by the dropped one.
    let mut tx = s.begin(TxMode::Write).unwrap();
    assert_eq!(tx.meta("k").unwrap(), None);
    assert!(tx.ca("a").unwrap().is_none());
    assert!(tx.leaf("l").unwrap().is_none());
    assert_eq!(tx.last_change_seq().unwrap(), 0);
    assert!(tx.audit_events(None, 0, 10).unwrap().is_empty());
    tx.insert_ca(&ca("a", "Root", None), None).unwrap();
    tx.commit().unwrap();
    assert!(h.reopen().begin(TxMode::Read).unwrap().ca("a").unwrap().is_some());
}

fn optimistic_update_and_tombstones(h: &dyn Harness) {
    let s = h.store();
    let mut tx = s.begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("r", "Root", None), Some(b"k")).unwrap();
    let mut issuing = ca("i", "Issuing", Some("r"));
    issuing.csr = Some(vec![7]);
    tx.insert_ca(&issuing, Some(b"k")).unwrap();
    tx.insert_leaf(&leaf("l1", "i", "01", 100)).unwrap();
    tx.put_ocsp_delegate("i", &[1], &[2], 10).unwrap();
    let mut row = tx.ca("i").unwrap().unwrap();
    row.row_version = 5; // stale
    assert!(matches!(tx.update_ca(&row), Err(StoreError::Conflict)));
    row.row_version = 1; // not incremented
    assert!(matches!(tx.update_ca(&row), Err(StoreError::Conflict)));
    row.row_version = 2;
    row.status = "revoked".into();
    row.revoked_at = Some(10);
    row.revocation_reason = Some(RevocationReason::CessationOfOperation);
    row.ocsp = Some(presigned(3, 10));
    row.chain = vec![vec![8]];
    tx.update_ca(&row).unwrap();
    assert_eq!(tx.ca("i").unwrap().unwrap(), row);
    assert!(matches!(tx.update_ca(&row), Err(StoreError::Conflict)));
    assert_eq!(tx.live_children("r").unwrap(), 1);

    tx.delete_ca("i", 11).unwrap();
    assert_eq!(tx.live_children("r").unwrap(), 0);
    assert!(tx.ca("i").unwrap().is_none());
    assert!(tx.sealed_key("i").unwrap().is_none());
    assert!(tx.leaf("l1").unwrap().is_none());
    assert!(tx.ocsp_delegate("i").unwrap().is_none());
    assert_eq!(tx.count_leaves(Some("i"), LeafFilter::All).unwrap(), 0);
    // The tombstone still feeds the root's CRL, and its name is free again.
    let tombstones = tx.revoked_children("r").unwrap();
    assert_eq!(ca_ids(&tombstones), ["i"]);
    assert_eq!(tombstones[0].row_version, 3);
    assert_eq!(tombstones[0].csr, None);
    assert_eq!(tombstones[0].revoked_at, Some(10));
    row.row_version = 4;
    assert!(matches!(tx.update_ca(&row), Err(StoreError::Conflict)));
    assert!(matches!(tx.delete_ca("i", 12), Err(StoreError::Conflict)));
    assert!(matches!(tx.delete_ca("missing", 12), Err(StoreError::Conflict)));
    tx.insert_ca(&ca("j", "Issuing", Some("r")), None).unwrap();
    assert!(matches!(
        tx.insert_ca(&ca("k", "issuing", Some("r")), None),
        Err(StoreError::DuplicateCommonName(_))
    ));
    tx.commit().unwrap();
    let tombstones = h.reopen().begin(TxMode::Read).unwrap().revoked_children("r").unwrap();
    assert_eq!(ca_ids(&tombstones), ["i"]);
}

fn cas_order_and_children(h: &dyn Harness) {
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("r", "R", None), None).unwrap();
    tx.insert_ca(&ca("a", "A", Some("r")), None).unwrap();
    tx.insert_ca(&ca("b", "B", Some("r")), None).unwrap();
    tx.insert_ca(&ca("c", "C", Some("a")), None).unwrap();
    assert_eq!(ca_ids(&tx.cas().unwrap()), ["r", "a", "b", "c"]);
    assert_eq!(tx.live_children("r").unwrap(), 2);
    assert_eq!(tx.live_children("a").unwrap(), 1);
    assert_eq!(tx.live_children("c").unwrap(), 0);
    assert_eq!(tx.live_children("nobody").unwrap(), 0);
    assert!(tx.revoked_children("r").unwrap().is_empty());

    let revoke = |row: &mut CaRow| {
        row.row_version += 1;
        row.revoked_at = Some(5);
        row.revocation_reason = Some(RevocationReason::KeyCompromise);
    };
    let mut b = tx.ca("b").unwrap().unwrap();
    revoke(&mut b);
    tx.update_ca(&b).unwrap();
    assert_eq!(ca_ids(&tx.revoked_children("r").unwrap()), ["b"]);
    tx.delete_ca("b", 6).unwrap();
    assert_eq!(ca_ids(&tx.cas().unwrap()), ["r", "a", "c"]);
    assert_eq!(tx.live_children("r").unwrap(), 1);
    tx.insert_ca(&ca("d", "D", Some("r")), None).unwrap();
    assert_eq!(ca_ids(&tx.cas().unwrap()), ["r", "a", "c", "d"]);
    let mut a = tx.ca("a").unwrap().unwrap();
    revoke(&mut a);
    tx.update_ca(&a).unwrap();
    // Creation order, deleted or not.
    assert_eq!(ca_ids(&tx.revoked_children("r").unwrap()), ["a", "b"]);
    assert!(tx.revoked_children("a").unwrap().is_empty());
    tx.commit().unwrap();
}

fn reserve_crl_numbers_monotonic(h: &dyn Harness) {
    let s = h.store();
    let mut tx = s.begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("r", "Root", None), None).unwrap();
    assert_eq!(tx.reserve_crl_numbers("r", 1).unwrap(), 1);
    assert_eq!(tx.reserve_crl_numbers("r", 1000).unwrap(), 1001);
    tx.commit().unwrap();

    let mut tx = s.begin(TxMode::Write).unwrap();
    assert_eq!(tx.reserve_crl_numbers("r", 5).unwrap(), 1006);
    let mut row = tx.ca("r").unwrap().unwrap();
    assert_eq!(row.crl_number, 1006);
    // update_ca does not write the CRL number: only reservations move it.
    row.crl_number = 0;
    row.row_version += 1;
    tx.update_ca(&row).unwrap();
    assert_eq!(tx.ca("r").unwrap().unwrap().crl_number, 1006);
    tx.commit().unwrap();

    {
        // A rolled-back reservation is not kept...
        let mut tx = s.begin(TxMode::Write).unwrap();
        assert_eq!(tx.reserve_crl_numbers("r", 100).unwrap(), 1106);
    }
    // ...and another process continues from the committed number.
    let other = h.reopen();
    let mut tx = other.begin(TxMode::Write).unwrap();
    assert_eq!(tx.reserve_crl_numbers("r", 1).unwrap(), 1007);
    tx.commit().unwrap();

    let mut tx = s.begin(TxMode::Write).unwrap();
    assert!(tx.reserve_crl_numbers("missing", 1).is_err());
}

fn leaves_filter_page_and_revoke_once(h: &dyn Harness) {
    let s = h.store();
    let mut tx = s.begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("i", "Issuing", None), None).unwrap();
    tx.insert_ca(&ca("j", "Other", None), None).unwrap();
    let mut last = 0;
    for n in 0..10 {
        let seq = tx
            .insert_leaf(&leaf(
                &format!("l{n}"),
                "i",
                &format!("{n:02X}"),
                if n < 8 { 100 } else { 10 },
            ))
            .unwrap();
        assert!(seq > last);
        last = seq;
        if n == 4 {
            tx.insert_leaf(&leaf("m5", "j", "05", 100)).unwrap();
        }
    }
    assert!(matches!(
        tx.insert_leaf(&leaf("x", "i", "01", 100)),
        Err(StoreError::DuplicateSerial)
    ));
    // Any unique violation reads as a duplicate serial, the id's too.
    assert!(matches!(
        tx.insert_leaf(&leaf("l1", "j", "77", 100)),
        Err(StoreError::DuplicateSerial)
    ));
    // The transaction goes on (the engine retries with another serial).
    let mut with_answers = leaf("l10", "i", "0A", 100);
    with_answers.ocsp = Some(presigned(4, 40));
    with_answers.seq = tx.insert_leaf(&with_answers).unwrap();
    assert_eq!(tx.leaf("l10").unwrap().unwrap(), with_answers);
    let l3 = tx.leaf("l3").unwrap().unwrap();
    assert_eq!(LeafRow { seq: 0, ..l3.clone() }, leaf("l3", "i", "03", 100));
    assert!(tx.leaf("nope").unwrap().is_none());

    let p = presigned(1, 50);
    assert!(tx.revoke_leaf("l0", 50, RevocationReason::KeyCompromise, &p).unwrap());
    assert!(!tx
        .revoke_leaf("l0", 51, RevocationReason::CaCompromise, &presigned(2, 51))
        .unwrap());
    assert!(!tx.revoke_leaf("nope", 51, RevocationReason::CaCompromise, &p).unwrap());
    let l0 = tx.leaf("l0").unwrap().unwrap();
    assert_eq!(
        (l0.revoked_at, l0.revocation_reason, l0.ocsp),
        (Some(50), Some(RevocationReason::KeyCompromise), Some(p))
    );
    // What a CRL scope must list, and its digest.
    assert_eq!(
        tx.revoked_in_partition("i", l0.crl_partition as u32).unwrap(),
        vec![("00".to_owned(), 50, 100)]
    );
    assert!(tx.revoked_in_partition("i", 9).unwrap().is_empty());
    assert_eq!(tx.crl_scope_digest("i", 2).unwrap(), None);
    tx.add_to_crl_scope_digest("i", 2, 7).unwrap(); // no row yet: nothing kept
    assert_eq!(tx.crl_scope_digest("i", 2).unwrap(), None);
    tx.set_crl_scope_digest("i", 2, 1, 40).unwrap();
    tx.add_to_crl_scope_digest("i", 2, 7).unwrap();
    assert_eq!(tx.crl_scope_digest("i", 2).unwrap(), Some((2, 47)));
    tx.set_crl_scope_digest("i", 2, 5, 5).unwrap();
    assert_eq!(tx.crl_scope_digest("i", 2).unwrap(), Some((5, 5)));
    assert_eq!(tx.crl_scope_digest("i", 3).unwrap(), None);

    // l0 revoked; l1..l7 and l10 active at 50; l8, l9 expired; m5 on j.
    assert_eq!(tx.count_leaves(Some("i"), LeafFilter::Active { now: 50 }).unwrap(), 8);
    assert_eq!(tx.count_leaves(Some("i"), LeafFilter::Expired { now: 50 }).unwrap(), 2);
    assert_eq!(tx.count_leaves(Some("i"), LeafFilter::Revoked).unwrap(), 1);
    assert_eq!(tx.count_leaves(Some("i"), LeafFilter::All).unwrap(), 11);
    assert_eq!(tx.count_leaves(None, LeafFilter::All).unwrap(), 12);
    assert_eq!(tx.count_leaves(None, LeafFilter::Active { now: 50 }).unwrap(), 9);
    assert_eq!(tx.count_leaves(None, LeafFilter::Expired { now: 100 }).unwrap(), 11);
    assert_eq!(tx.count_leaves(None, LeafFilter::Revoked).unwrap(), 1);
    assert_eq!(tx.count_leaves(Some("nobody"), LeafFilter::All).unwrap(), 0);

    let mut page = |ca_id: Option<&str>, filter: LeafFilter, limit: u32| {
        let mut out = Vec::new();
        let mut after_seq = 0;
        loop {
            let rows = tx
                .leaves(&LeafQuery {
                    ca_id: ca_id.map(Into::into),
                    filter,
                    after_seq,
                    limit,
                })
                .unwrap();
            assert!(rows.len() <= limit as usize);
            let Some(last) = rows.last() else { break };
            after_seq = last.seq;
            out.extend(leaf_ids(&rows));
        }
        out
    };
    let all_i: Vec<String> = (0..11).map(|n| format!("l{n}")).collect();
    assert_eq!(page(Some("i"), LeafFilter::All, 4), all_i);
    assert_eq!(
        page(Some("i"), LeafFilter::Active { now: 50 }, 3),
        ["l1", "l2", "l3", "l4", "l5", "l6", "l7", "l10"]
    );
    assert_eq!(page(Some("i"), LeafFilter::Expired { now: 50 }, 1), ["l8", "l9"]);
    assert_eq!(page(None, LeafFilter::Revoked, 10), ["l0"]);
    assert_eq!(
        page(None, LeafFilter::All, 5),
        ["l0", "l1", "l2", "l3", "l4", "m5", "l5", "l6", "l7", "l8", "l9", "l10"]
    );
    assert_eq!(
        page(Some("j"), LeafFilter::Active { now: 100 }, 5),
        Vec::<String>::new()
    );

    assert_eq!(leaf_ids(&tx.leaves_by_serial(Some("i"), "05").unwrap()), ["l5"]);
    assert_eq!(leaf_ids(&tx.leaves_by_serial(None, "05").unwrap()), ["m5", "l5"]);
    assert!(tx.leaves_by_serial(Some("j"), "01").unwrap().is_empty());
    assert!(tx.leaves_by_serial(None, "FF").unwrap().is_empty());

    let stored = tx.leaf("l3").unwrap().unwrap();
    tx.commit().unwrap();
    // Every column comes back as written, after a reopen too.
    let reread = h.reopen().begin(TxMode::Read).unwrap().leaf("l3").unwrap().unwrap();
    assert_eq!(reread, stored);
    assert_eq!(reread.key_usages, ["digitalSignature", "keyEncipherment"]);
    assert_eq!(reread.device_platform, "Windows10AndLater");

    // A leaf of an unknown CA is refused (foreign key).
    let mut tx = s.begin(TxMode::Write).unwrap();
    assert!(tx.insert_leaf(&leaf("orphan", "nobody", "01", 100)).is_err());
}

fn set_leaf_ocsp_and_leaves_signed_at_seq(h: &dyn Harness) {
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("i", "I", None), None).unwrap();
    tx.insert_ca(&ca("j", "J", None), None).unwrap();
    for (id, ca_id, serial) in [("a", "i", "01"), ("b", "i", "02"), ("c", "i", "03"), ("d", "j", "01")] {
        tx.insert_leaf(&leaf(id, ca_id, serial, 100)).unwrap();
    }
    let seq = tx.append_change(1, ChangeKind::OcspRefreshed, "i", None).unwrap();
    let p = presigned(1, 20);
    tx.set_leaf_ocsp("c", &p, seq).unwrap();
    tx.set_leaf_ocsp("a", &p, seq).unwrap();
    tx.set_leaf_ocsp("d", &p, seq).unwrap();
    tx.set_leaf_ocsp("missing", &p, seq).unwrap();
    let mut signed = status_ids(&tx.leaves_signed_at_seq("i", seq).unwrap());
    signed.sort();
    assert_eq!(signed, ["a", "c"]);
    assert_eq!(status_ids(&tx.leaves_signed_at_seq("j", seq).unwrap()), ["d"]);
    assert!(tx.leaves_signed_at_seq("i", seq + 1).unwrap().is_empty());
    assert_eq!(tx.leaf_status("a").unwrap().unwrap().ocsp, Some(p.clone()));
    assert_eq!(tx.leaf("a").unwrap().unwrap().ocsp, Some(p));
    assert_eq!(tx.leaf_status("b").unwrap().unwrap().ocsp, None);

    let seq2 = tx.append_change(2, ChangeKind::OcspRefreshed, "i", None).unwrap();
    tx.set_leaf_ocsp("a", &presigned(2, 30), seq2).unwrap();
    assert_eq!(status_ids(&tx.leaves_signed_at_seq("i", seq).unwrap()), ["c"]);
    assert_eq!(status_ids(&tx.leaves_signed_at_seq("i", seq2).unwrap()), ["a"]);
    tx.commit().unwrap();
}

fn leaves_due_for_ocsp_ordering(h: &dyn Harness) {
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("i", "I", None), None).unwrap();
    for (n, (id, signed)) in [
        ("t30", Some(30)),
        ("never", None),
        ("t10", Some(10)),
        ("t50", Some(50)),
        ("t20", Some(20)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut row = leaf(id, "i", &format!("{n:02X}"), 100);
        row.ocsp = signed.map(|t| presigned(1, t));
        tx.insert_leaf(&row).unwrap();
    }
    // Revoked leaves are re-signed too.
    tx.insert_leaf(&leaf("r", "i", "FF", 100)).unwrap();
    assert!(tx
        .revoke_leaf("r", 15, RevocationReason::KeyCompromise, &presigned(2, 15))
        .unwrap());

    // Never signed first, then oldest first; `signed_before` is exclusive.
    assert_eq!(
        status_ids(&tx.leaves_due_for_ocsp(40, 10).unwrap()),
        ["never", "t10", "r", "t20", "t30"]
    );
    assert_eq!(status_ids(&tx.leaves_due_for_ocsp(40, 2).unwrap()), ["never", "t10"]);
    assert_eq!(status_ids(&tx.leaves_due_for_ocsp(10, 10).unwrap()), ["never"]);
    let due = tx.leaves_due_for_ocsp(16, 10).unwrap();
    assert_eq!(due[2].revoked_at, Some(15));
    assert_eq!(due[2].revocation_reason, Some(RevocationReason::KeyCompromise));
    assert_eq!(due[2].ocsp, Some(presigned(2, 15)));
    tx.commit().unwrap();
}

fn leaf_status_page_and_status(h: &dyn Harness) {
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("i", "I", None), None).unwrap();
    tx.insert_ca(&ca("j", "J", None), None).unwrap();
    let mut seqs = std::collections::HashMap::new();
    for (n, (id, ca_id)) in [
        ("l0", "i"),
        ("m0", "j"),
        ("l1", "i"),
        ("l2", "i"),
        ("m1", "j"),
        ("l3", "i"),
        ("l4", "i"),
    ]
    .into_iter()
    .enumerate()
    {
        seqs.insert(
            id,
            tx.insert_leaf(&leaf(id, ca_id, &format!("{n:02X}"), 100 + n as i64))
                .unwrap(),
        );
    }
    assert_eq!(status_ids(&tx.leaf_status_page("i", 0, 2).unwrap()), ["l0", "l1"]);
    assert_eq!(
        status_ids(&tx.leaf_status_page("i", seqs["l1"], 2).unwrap()),
        ["l2", "l3"]
    );
    assert_eq!(status_ids(&tx.leaf_status_page("i", seqs["l3"], 10).unwrap()), ["l4"]);
    assert!(tx.leaf_status_page("i", seqs["l4"], 10).unwrap().is_empty());
    assert_eq!(status_ids(&tx.leaf_status_page("j", 0, 10).unwrap()), ["m0", "m1"]);
    assert!(tx.leaf_status_page("nobody", 0, 10).unwrap().is_empty());

    let p = presigned(3, 60);
    assert!(tx.revoke_leaf("l2", 60, RevocationReason::Superseded, &p).unwrap());
    let full = tx.leaf("l2").unwrap().unwrap();
    assert_eq!(
        tx.leaf_status("l2").unwrap().unwrap(),
        LeafStatusRow {
            seq: seqs["l2"],
            id: "l2".into(),
            ca_id: "i".into(),
            serial: full.serial,
            not_after: 103,
            revoked_at: Some(60),
            revocation_reason: Some(RevocationReason::Superseded),
            ocsp: Some(p),
            crl_partition: 2,
        }
    );
    assert!(tx.leaf_status("missing").unwrap().is_none());
    tx.commit().unwrap();
}

fn crl_put_only_if_higher(h: &dyn Harness) {
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("i", "I", None), None).unwrap();
    let current = CrlScopeKey::complete(0);
    assert!(tx.crl("i", current).unwrap().is_none());
    assert_eq!(tx.crl_numbers("i").unwrap(), []);
    let crl = |scope: CrlScopeKey, number: i64, der: u8| CrlRow {
        ca_id: "i".into(),
        scope,
        number,
        this_update: number * 10,
        next_update: number * 10 + 5,
        der: vec![der],
    };
    tx.put_crl(&crl(current, 5, 1)).unwrap();
    assert_eq!(tx.crl("i", current).unwrap().unwrap(), crl(current, 5, 1));
    tx.put_crl(&crl(current, 3, 2)).unwrap(); // lower: ignored
    tx.put_crl(&crl(current, 5, 3)).unwrap(); // equal: ignored
    assert_eq!(tx.crl("i", current).unwrap().unwrap(), crl(current, 5, 1));
    tx.put_crl(&crl(current, 6, 4)).unwrap();
    assert_eq!(tx.crl("i", current).unwrap().unwrap(), crl(current, 6, 4));
    // Partitions and their deltas are stored side by side, each only growing.
    let (p2, d2) = (CrlScopeKey::complete(2), CrlScopeKey::delta(2));
    tx.put_crl(&crl(p2, 3, 7)).unwrap();
    tx.put_crl(&crl(p2, 2, 8)).unwrap();
    tx.put_crl(&crl(d2, 4, 9)).unwrap();
    assert_eq!(tx.crl("i", p2).unwrap().unwrap(), crl(p2, 3, 7));
    assert_eq!(tx.crl("i", d2).unwrap().unwrap(), crl(d2, 4, 9));
    assert!(tx.crl("i", CrlScopeKey::complete(1)).unwrap().is_none());
    assert_eq!(tx.crl_numbers("i").unwrap(), [(current, 6), (p2, 3), (d2, 4)]);
    tx.commit().unwrap();
    let other = h.reopen();
    let mut tx = other.begin(TxMode::Write).unwrap();
    tx.put_crl(&crl(current, 4, 5)).unwrap();
    assert_eq!(tx.crl("i", current).unwrap().unwrap(), crl(current, 6, 4));
    assert!(tx.crl("nobody", current).unwrap().is_none());
}

fn roles_and_assignments(h: &dyn Harness) {
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    assert!(tx.roles().unwrap().is_empty());
    assert!(tx.assignments(None).unwrap().is_empty());
    tx.put_role("b", r#"["x"]"#).unwrap();
    tx.put_role("a", "[]").unwrap();
    tx.put_role("a", r#"["y"]"#).unwrap();
    let own = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(tx.roles().unwrap(), [own("a", r#"["y"]"#), own("b", r#"["x"]"#)]);
    tx.put_assignment("p2", "r1", "[]").unwrap();
    tx.put_assignment("p1", "r2", r#"["t"]"#).unwrap();
    tx.put_assignment("p1", "r1", "[]").unwrap();
    tx.put_assignment("p1", "r1", r#"["u"]"#).unwrap();
    let own3 = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    let all = vec![
        own3("p1", "r1", r#"["u"]"#),
        own3("p1", "r2", r#"["t"]"#),
        own3("p2", "r1", "[]"),
    ];
    assert_eq!(tx.assignments(None).unwrap(), all);
    assert_eq!(tx.assignments(Some("p1")).unwrap(), all[..2]);
    assert!(tx.assignments(Some("nobody")).unwrap().is_empty());
    tx.commit().unwrap();
    let other = h.reopen();
    let mut tx = other.begin(TxMode::Read).unwrap();
    assert_eq!(tx.assignments(None).unwrap(), all);
    assert_eq!(tx.roles().unwrap().len(), 2);
}

fn audit_append_only(h: &dyn Harness) {
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    let mut events = vec![audit(1, "createCa"), audit(2, "revokeLeaf"), audit(3, "createCa")];
    for e in &mut events {
        e.seq = tx.append_audit(e).unwrap();
    }
    assert!(events[0].seq < events[1].seq && events[1].seq < events[2].seq);
    assert_eq!(tx.audit_events(None, 0, 10).unwrap(), events);
    assert_eq!(tx.audit_events(None, 0, 2).unwrap(), events[..2]);
    assert_eq!(tx.audit_events(None, events[1].seq, 10).unwrap(), events[2..]);
    assert_eq!(
        tx.audit_events(Some("createCa"), 0, 10).unwrap(),
        [events[0].clone(), events[2].clone()]
    );
    assert_eq!(
        tx.audit_events(Some("createCa"), events[0].seq, 10).unwrap(),
        events[2..]
    );
    assert!(tx.audit_events(Some("nothing"), 0, 10).unwrap().is_empty());
    tx.commit().unwrap();

    for sql in [
        "UPDATE audit_events SET actor = 'mallory'".to_owned(),
        format!("UPDATE audit_events SET detail = 'x' WHERE seq = {}", events[1].seq),
        "DELETE FROM audit_events".to_owned(),
        format!("DELETE FROM audit_events WHERE seq = {}", events[0].seq),
    ] {
        let err = h.raw(&sql).expect_err(&sql);
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    let other = h.reopen();
    assert_eq!(
        other.begin(TxMode::Read).unwrap().audit_events(None, 0, 10).unwrap(),
        events
    );
}

fn ocsp_delegates(h: &dyn Harness) {
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("i", "I", None), None).unwrap();
    assert!(tx.ocsp_delegate("i").unwrap().is_none());
    tx.put_ocsp_delegate("i", &[1], &[2], 10).unwrap();
    let delegate = |cert: u8, key: u8, not_after: i64| DelegateRow {
        cert: vec![cert],
        sealed_key: vec![key],
        not_after,
    };
    assert_eq!(tx.ocsp_delegate("i").unwrap(), Some(delegate(1, 2, 10)));
    tx.put_ocsp_delegate("i", &[3], &[4], 20).unwrap();
    assert_eq!(tx.ocsp_delegate("i").unwrap(), Some(delegate(3, 4, 20)));
    assert!(tx.ocsp_delegate("nobody").unwrap().is_none());
    tx.commit().unwrap();
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    assert_eq!(tx.ocsp_delegate("i").unwrap(), Some(delegate(3, 4, 20)));
    tx.delete_ca("i", 30).unwrap();
    assert!(tx.ocsp_delegate("i").unwrap().is_none());
    tx.commit().unwrap();
}

fn enrolment_profiles_challenges_and_nonces(h: &dyn Harness) {
    let profile = |id: &str, ca: &str, at: i64| ProfileRow {
        id: id.into(),
        ca_id: ca.into(),
        name: format!("profile {id}"),
        key_types: "rsa2048 rsa3072".into(),
        cn_suffixes: "devices.example".into(),
        dns_suffixes: String::new(),
        ekus: "1.3.6.1.5.5.7.3.2".into(),
        validity_days: 365,
        renewal_days: 30,
        requires_approval: id == "p2",
        created_at: at,
        created_by: "admin".into(),
        removed_at: None,
        key_usages: if id == "p1" {
            "DigitalSignature".into()
        } else {
            String::new()
        },
    };
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("i", "I", None), None).unwrap();
    tx.insert_profile(&profile("p1", "i", 1)).unwrap();
    tx.insert_profile(&profile("p2", "i", 2)).unwrap();
    tx.insert_profile(&profile("p3", "other", 3)).unwrap();
    assert_eq!(tx.profile("p1").unwrap(), Some(profile("p1", "i", 1)));
    let ids = |v: Vec<ProfileRow>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(ids(tx.profiles(Some("i")).unwrap()), ["p1", "p2"]);
    assert_eq!(ids(tx.profiles(None).unwrap()), ["p1", "p2", "p3"]);
    assert!(tx.remove_profile("p2", 5).unwrap());
    assert!(!tx.remove_profile("p2", 6).unwrap(), "removed once");
    assert_eq!(ids(tx.profiles(Some("i")).unwrap()), ["p1"]);
    assert_eq!(tx.profile("p2").unwrap().unwrap().removed_at, Some(5));

    let challenge = ChallengeRow {
        id: "c1".into(),
        profile_id: "p1".into(),
        secret_hash: vec![7; 32],
        uses_left: 2,
        expires_at: 100,
        device_id: Some("dev".into()),
        subject: None,
        created_at: 1,
        created_by: "admin".into(),
    };
    tx.insert_challenge(&challenge).unwrap();
    assert_eq!(tx.challenge_by_hash(&[7; 32]).unwrap(), Some(challenge.clone()));
    assert!(tx.challenge_by_hash(&[8; 32]).unwrap().is_none());
    assert!(tx.spend_challenge("c1").unwrap());
    assert!(tx.spend_challenge("c1").unwrap());
    assert!(!tx.spend_challenge("c1").unwrap(), "two uses only");
    assert_eq!(tx.challenge_by_hash(&[7; 32]).unwrap().unwrap().uses_left, 0);

    assert!(tx.remember_nonce("i", &[1; 16], 50, 10).unwrap());
    assert!(!tx.remember_nonce("i", &[1; 16], 50, 20).unwrap(), "a replay");
    assert!(tx.remember_nonce("other", &[1; 16], 50, 20).unwrap(), "per CA");
    assert!(
        tx.remember_nonce("i", &[1; 16], 80, 60).unwrap(),
        "forgotten after expiry"
    );

    assert!(tx.enrolment_profile("leaf").unwrap().is_none());
    tx.put_enrolment("leaf", "p1", "tid", 9).unwrap();
    assert_eq!(tx.enrolment_profile("leaf").unwrap().as_deref(), Some("p1"));

    assert!(tx.scep_ras("i", 0).unwrap().is_empty());
    let ra = |cert: u8, key: u8, not_after: i64| DelegateRow {
        cert: vec![cert],
        sealed_key: vec![key],
        not_after,
    };
    tx.put_scep_ra("i:01", "i", &ra(1, 2, 10), 0).unwrap();
    tx.put_scep_ra("i:02", "i", &ra(3, 4, 20), 0).unwrap();
    assert_eq!(
        tx.scep_ras("i", 5).unwrap(),
        [("i:02".to_owned(), ra(3, 4, 20)), ("i:01".to_owned(), ra(1, 2, 10))],
        "latest first; the earlier one still decrypts until it expires"
    );
    assert_eq!(
        tx.scep_ras("i", 10).unwrap(),
        [("i:02".to_owned(), ra(3, 4, 20))],
        "expired: gone"
    );
    tx.put_scep_ra("i:03", "i", &ra(5, 6, 30), 15).unwrap();
    assert_eq!(
        tx.sealed_keys(SealedTable::ScepRaKeys, "", 10).unwrap(),
        [("i:02".to_owned(), vec![4]), ("i:03".to_owned(), vec![6])],
        "an expired RA's key is deleted when a new one is added"
    );

    let request = |id: &str, tid: &str, at: i64| EnrolmentRequestRow {
        id: id.into(),
        ca_id: "i".into(),
        transaction_id: tid.into(),
        profile_id: "p1".into(),
        csr: vec![1, 2, 3],
        device_id: None,
        requested_at: at,
        state: "pending".into(),
        decided_at: None,
        decided_by: None,
        leaf_id: None,
        reason: None,
    };
    tx.insert_enrolment_request(&request("r1", "T1", 1)).unwrap();
    tx.insert_enrolment_request(&request("r2", "T2", 2)).unwrap();
    assert_eq!(tx.enrolment_request("r1").unwrap(), Some(request("r1", "T1", 1)));
    assert_eq!(
        tx.enrolment_request_by_transaction("i", "T2").unwrap().unwrap().id,
        "r2"
    );
    assert!(tx.enrolment_request_by_transaction("other", "T2").unwrap().is_none());
    let ids: Vec<String> = tx
        .enrolment_requests("i", 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["r2", "r1"], "newest first");
    let decided = EnrolmentRequestRow {
        state: "issued".into(),
        decided_at: Some(5),
        decided_by: Some("admin".into()),
        leaf_id: Some("leaf".into()),
        ..request("r1", "T1", 1)
    };
    assert!(tx.decide_enrolment_request(&decided).unwrap());
    assert!(!tx.decide_enrolment_request(&decided).unwrap(), "decided once");
    assert_eq!(tx.enrolment_request("r1").unwrap(), Some(decided));
    tx.commit().unwrap();
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    assert!(tx.profile("p2").unwrap().unwrap().requires_approval);
    tx.delete_ca("i", 30).unwrap();
    assert!(tx.scep_ras("i", 0).unwrap().is_empty(), "the RA keys go with their CA");
    tx.commit().unwrap();
    // One request per transaction (last: PostgreSQL aborts the transaction).
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    assert!(tx.insert_enrolment_request(&request("r3", "T1", 3)).is_err());
}

fn responders_and_their_certificates(h: &dyn Harness) {
    let request = |id: &str, at: i64| ResponderRow {
        id: id.into(),
        name: format!("node {id}"),
        public_key: vec![0x30, id.len() as u8],
        requested_at: at,
        approved_at: None,
        approved_by: None,
        removed_at: None,
        last_seen_at: None,
    };
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    assert!(tx.request_responder(&request("b", 5)).unwrap());
    assert!(tx.request_responder(&request("a", 7)).unwrap());
    // Asking again changes nothing, whatever the new request says.
    let mut again = request("b", 9);
    again.name = "impostor".into();
    assert!(!tx.request_responder(&again).unwrap());
    tx.commit().unwrap();

    let mut tx = h.store().begin(TxMode::Write).unwrap();
    let mut approved = request("b", 5);
    approved.approved_at = Some(10);
    approved.approved_by = Some("admin".into());
    tx.set_responder_state(&approved).unwrap();
    assert!(matches!(
        tx.set_responder_state(&request("nobody", 1)),
        Err(StoreError::Conflict)
    ));
    assert_eq!(tx.responders().unwrap(), vec![approved.clone(), request("a", 7)]);
    assert!(tx.responder_seen("a", 8).unwrap());
    assert!(!tx.responder_seen("nobody", 8).unwrap());
    assert_eq!(tx.responders().unwrap()[1].last_seen_at, Some(8));

    let cert = |v: i64, byte: u8, not_after: i64| ResponderCertRow {
        responder_id: "b".into(),
        ca_id: "i".into(),
        ca_version: v,
        cert: vec![byte],
        not_after,
    };
    assert!(tx.responder_cert("b", "i", 1).unwrap().is_none());
    tx.put_responder_cert(&cert(1, 1, 100)).unwrap();
    tx.put_responder_cert(&cert(2, 2, 200)).unwrap();
    tx.put_responder_cert(&cert(1, 3, 300)).unwrap();
    tx.commit().unwrap();
    let mut tx = h.store().begin(TxMode::Read).unwrap();
    assert_eq!(tx.responder_cert("b", "i", 1).unwrap(), Some(cert(1, 3, 300)));
    assert_eq!(tx.responder_cert("b", "i", 2).unwrap(), Some(cert(2, 2, 200)));
    assert!(tx.responder_cert("a", "i", 1).unwrap().is_none());
}

fn token_deny_list(h: &dyn Harness) {
    let token = |jti: &str, issued_at: i64, expires_at: i64| TokenRow {
        jti: jti.into(),
        principal: "alice".into(),
        issued_at,
        expires_at,
        permissions: "DeviceManagementCloudCA.Read.All".into(),
        revoked_at: None,
        revoked_by: None,
    };
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    tx.put_token(&token("t1", 10, 100)).unwrap();
    tx.put_token(&token("t2", 20, 200)).unwrap();
    tx.commit().unwrap();
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    assert!(tx.put_token(&token("t1", 10, 100)).is_err(), "a jti is unique");
    drop(tx);
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    assert!(!tx.token_revoked("t1").unwrap());
    assert!(!tx.token_revoked("unknown").unwrap());
    assert!(tx.revoke_token("t1", 50, "admin").unwrap());
    assert!(
        !tx.revoke_token("t1", 60, "other").unwrap(),
        "revoking twice keeps the first record"
    );
    // A foreign token's id goes on the deny list too.
    assert!(tx.revoke_token("foreign", 70, "admin").unwrap());
    tx.commit().unwrap();
    let mut tx = h.store().begin(TxMode::Read).unwrap();
    assert!(tx.token_revoked("t1").unwrap() && tx.token_revoked("foreign").unwrap());
    assert!(!tx.token_revoked("t2").unwrap());
    let all = tx.tokens(0).unwrap();
    assert_eq!(ids(&all, |t| &t.jti), ["t2", "t1", "foreign"]);
    let t1 = all.iter().find(|t| t.jti == "t1").unwrap();
    assert_eq!((t1.revoked_at, t1.revoked_by.as_deref()), (Some(50), Some("admin")));
    // Expired tokens drop out of the listing; ids of unknown expiry stay.
    assert_eq!(ids(&tx.tokens(150).unwrap(), |t| &t.jti), ["t2", "foreign"]);
}

fn meta_prefix_and_delete(h: &dyn Harness) {
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    for (k, v) in [
        ("node:b", "2"),
        ("node:a", "1"),
        ("nodes", "x"),
        ("nod", "y"),
        ("other", "z"),
    ] {
        tx.set_meta(k, v).unwrap();
    }
    // A LIKE wildcard in the prefix is taken literally.
    tx.set_meta("n%de:q", "w").unwrap();
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        tx.meta_with_prefix("node:").unwrap(),
        pairs(&[("node:a", "1"), ("node:b", "2")])
    );
    assert_eq!(tx.meta_with_prefix("n%").unwrap(), pairs(&[("n%de:q", "w")]));
    tx.delete_meta("node:a").unwrap();
    tx.delete_meta("missing").unwrap();
    tx.commit().unwrap();
    let other = h.reopen();
    let mut tx = other.begin(TxMode::Read).unwrap();
    assert_eq!(tx.meta_with_prefix("node:").unwrap(), pairs(&[("node:b", "2")]));
    assert_eq!(tx.meta("node:a").unwrap(), None);
}

fn sealed_keys_page_and_replace(h: &dyn Harness) {
    let mut tx = h.store().begin(TxMode::Write).unwrap();
    // Ids whose byte order differs from a case-insensitive collation's.
    for id in ["b", "a", "C", "d"] {
        tx.insert_ca(&ca(id, id, None), Some(id.as_bytes())).unwrap();
    }
    tx.insert_ca(&ca("nokey", "nokey", None), None).unwrap();
    tx.put_ocsp_delegate("b", &[1], b"db", 10).unwrap();
    tx.put_ocsp_delegate("a", &[1], b"da", 10).unwrap();
    tx.delete_ca("d", 5).unwrap();
    tx.commit().unwrap();

    let mut tx = h.store().begin(TxMode::Write).unwrap();
    let owners = |rows: Vec<(String, Vec<u8>)>| rows.into_iter().map(|(o, _)| o).collect::<Vec<_>>();
    // Live CAs with a key, by byte order of the id; a deleted CA's key is gone.
    assert_eq!(
        owners(tx.sealed_keys(SealedTable::CaKeys, "", 10).unwrap()),
        ["C", "a", "b"]
    );
    assert_eq!(owners(tx.sealed_keys(SealedTable::CaKeys, "", 2).unwrap()), ["C", "a"]);
    assert_eq!(owners(tx.sealed_keys(SealedTable::CaKeys, "a", 2).unwrap()), ["b"]);
    assert_eq!(
        tx.sealed_keys(SealedTable::OcspDelegateKeys, "", 10).unwrap(),
        vec![("a".to_string(), b"da".to_vec()), ("b".to_string(), b"db".to_vec())]
    );
    assert!(tx.replace_sealed_key(SealedTable::CaKeys, "a", b"new-a").unwrap());
    assert!(!tx.replace_sealed_key(SealedTable::CaKeys, "nokey", b"x").unwrap());
    assert!(!tx.replace_sealed_key(SealedTable::CaKeys, "d", b"x").unwrap());
    assert!(tx
        .replace_sealed_key(SealedTable::OcspDelegateKeys, "b", b"new-db")
        .unwrap());
    assert!(!tx.replace_sealed_key(SealedTable::OcspDelegateKeys, "C", b"x").unwrap());
    let before = tx.ca("a").unwrap().unwrap();
    tx.commit().unwrap();
    let other = h.reopen();
    let mut tx = other.begin(TxMode::Read).unwrap();
    assert_eq!(tx.sealed_key("a").unwrap().as_deref(), Some(&b"new-a"[..]));
    assert_eq!(tx.sealed_key("nokey").unwrap(), None);
    assert_eq!(tx.ocsp_delegate("b").unwrap().unwrap().sealed_key, b"new-db");
    // The key is not the entity: no row version bump, no change-log entry.
    assert_eq!(tx.ca("a").unwrap().unwrap(), before);
    assert_eq!(before.row_version, 1);
}

fn change_log_seq_monotonic_and_changes_since(h: &dyn Harness) {
    let s = h.store();
    let mut tx = s.begin(TxMode::Read).unwrap();
    assert_eq!(tx.last_change_seq().unwrap(), 0);
    assert!(tx.changes_since(0, 10).unwrap().is_empty());
    drop(tx);

    let kinds = ChangeKind::ALL;
    let mut tx = s.begin(TxMode::Write).unwrap();
    let mut seqs = Vec::new();
    for (n, kind) in kinds.into_iter().enumerate() {
        let leaf_id = matches!(
            kind,
            ChangeKind::LeafIssued | ChangeKind::LeafRevoked | ChangeKind::LeafUpdated
        )
        .then(|| format!("l{n}"));
        let seq = tx.append_change(100 + n as i64, kind, "i", leaf_id.as_deref()).unwrap();
        assert!(seqs.last().is_none_or(|&last| seq > last));
        seqs.push(seq);
    }
    assert_eq!(tx.last_change_seq().unwrap(), *seqs.last().unwrap());
    // Changes that can change a CRL: a leaf revoked, a CA updated.
    assert_eq!(tx.revocation_changes_after(0).unwrap(), 2);
    assert_eq!(tx.revocation_changes_after(seqs[1]).unwrap(), 1);
    assert_eq!(tx.revocation_changes_after(seqs[4]).unwrap(), 0);
    tx.commit().unwrap();

    let changes = s.begin(TxMode::Read).unwrap().changes_since(0, 100).unwrap();
    assert_eq!(changes.len(), kinds.len());
    for (n, c) in changes.iter().enumerate() {
        assert_eq!(
            (c.seq, c.at, c.kind, c.ca_id.as_str()),
            (seqs[n], 100 + n as i64, kinds[n], "i")
        );
        assert_eq!(c.leaf_id.is_some(), (3..6).contains(&n));
    }
    assert_eq!(changes[4].leaf_id.as_deref(), Some("l4"));

    {
        let mut tx = s.begin(TxMode::Write).unwrap();
        tx.append_change(1, ChangeKind::CaUpdated, "i", None).unwrap();
    }
    let other = h.reopen();
    let mut tx = other.begin(TxMode::Write).unwrap();
    let next = tx.append_change(200, ChangeKind::CaUpdated, "j", None).unwrap();
    assert!(next > *seqs.last().unwrap(), "sequence numbers only grow");
    tx.commit().unwrap();

    let mut tx = s.begin(TxMode::Read).unwrap();
    assert_eq!(tx.last_change_seq().unwrap(), next);
    let page: Vec<i64> = tx.changes_since(seqs[2], 3).unwrap().iter().map(|c| c.seq).collect();
    assert_eq!(page, seqs[3..6]);
    let tail = tx.changes_since(*seqs.last().unwrap(), 10).unwrap();
    assert_eq!(tail.len(), 1, "the rolled-back change is not in the log");
    assert_eq!((tail[0].seq, tail[0].ca_id.as_str()), (next, "j"));
    assert!(tx.changes_since(next, 10).unwrap().is_empty());
}

fn read_tx_sees_one_state(h: &dyn Harness) {
    let s = h.store();
    let mut tx = s.begin(TxMode::Write).unwrap();
    tx.insert_ca(&ca("a", "A", None), None).unwrap();
    let first = tx.append_change(1, ChangeKind::CaCreated, "a", None).unwrap();
    tx.commit().unwrap();

    let mut reader = s.begin(TxMode::Read).unwrap();
    assert_eq!(reader.last_change_seq().unwrap(), first);
    // Writers commit, in this process and another, while the reader is open.
    let other = h.reopen();
    for (store, id) in [(s, "b"), (&*other, "c")] {
        let mut tx = store.begin(TxMode::Write).unwrap();
        tx.insert_ca(&ca(id, &id.to_uppercase(), None), None).unwrap();
        tx.append_change(2, ChangeKind::CaCreated, id, None).unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(reader.last_change_seq().unwrap(), first);
    assert!(reader.changes_since(first, 10).unwrap().is_empty());
    assert!(reader.ca("b").unwrap().is_none());
    assert_eq!(ca_ids(&reader.cas().unwrap()), ["a"]);
    drop(reader);

    let mut reader = s.begin(TxMode::Read).unwrap();
    assert_eq!(ca_ids(&reader.cas().unwrap()), ["a", "b", "c"]);
    assert_eq!(reader.changes_since(first, 10).unwrap().len(), 2);
}

/// Instantiates every conformance test for both backends.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::SqliteHarness::new());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::PgHarness::new());
                }
            )*
        }
    };
}

suite!(
    meta_roundtrip,
    ca_roundtrip_and_unique_common_name,
    rollback_on_drop,
    optimistic_update_and_tombstones,
    cas_order_and_children,
    reserve_crl_numbers_monotonic,
    leaves_filter_page_and_revoke_once,
    set_leaf_ocsp_and_leaves_signed_at_seq,
    leaves_due_for_ocsp_ordering,
    leaf_status_page_and_status,
    crl_put_only_if_higher,
    roles_and_assignments,
    audit_append_only,
    ocsp_delegates,
    enrolment_profiles_challenges_and_nonces,
    responders_and_their_certificates,
    token_deny_list,
    change_log_seq_monotonic_and_changes_since,
    read_tx_sees_one_state,
    meta_prefix_and_delete,
    sealed_keys_page_and_replace,
    ordered_leaf_pages_match_a_full_sort,
);
