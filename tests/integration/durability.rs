//! An acknowledged revocation survives `kill -9` of the process that made it,
//! mid-batch, and nothing is ever half-written.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use rusqlite::Connection;

use crate::support::{id, Env};

#[test]
fn acknowledged_revocations_survive_kill_9() {
    let env = Env::new();
    let root = id(&env.create_ca(&[
        "--type",
        "root",
        "--common-name",
        "Durable Root",
        "--key-size",
        "eCP256",
    ]));
    let issuing = id(&env.create_ca(&[
        "--type",
        "issuing",
        "--issuer",
        &root,
        "--common-name",
        "Durable Issuing",
        "--key-size",
        "eCP256",
    ]));
    let csr = env.openssl_csr("fleet", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=fleet");
    const TOTAL: usize = 3000;
    let issued = env.json(&[
        "cert",
        "issue-bulk",
        "--ca",
        &issuing,
        "--csr",
        csr.to_str().unwrap(),
        "--count",
        &TOTAL.to_string(),
    ]);
    assert_eq!(issued["issued"], TOTAL);

    // Revoke in batches of 5 (600 commits) and kill -9 after a few acknowledgements.
    let mut child = env
        .command()
        .args([
            "--json",
            "cert",
            "revoke-all",
            "--ca",
            &issuing,
            "--batch",
            "5",
            "--reason",
            "keyCompromise",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acknowledged: Vec<String> = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acknowledged.len() < 50 {
        let line = lines.next().expect("an acknowledgement line").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        acknowledged.extend(
            v["acknowledged"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned()),
        );
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "the revocation run must have been killed mid-way");

    // Reopen the store directly: every acknowledged serial is revoked, and each
    // revoked leaf is whole (time and reason) with exactly one change-log entry.
    let db = Connection::open(env.data_dir().join("cloudpki.db")).unwrap();
    let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    for serial in &acknowledged {
        let (at, reason): (Option<i64>, Option<i64>) = db
            .query_row(
                "SELECT revoked_at, revocation_reason FROM leaves WHERE serial = ?",
                [serial],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(at.is_some(), "acknowledged serial {serial} lost its revocation");
        assert_eq!(reason, Some(1));
    }
    let revoked: i64 = db
        .query_row("SELECT count(*) FROM leaves WHERE revoked_at IS NOT NULL", [], |r| {
            r.get(0)
        })
        .unwrap();
    let half: i64 = db
        .query_row(
            "SELECT count(*) FROM leaves WHERE (revoked_at IS NULL) != (revocation_reason IS NULL)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let logged: i64 = db
        .query_row("SELECT count(*) FROM changes WHERE kind = 'leafRevoked'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(half, 0, "half-written revocations");
    assert_eq!(logged, revoked, "every revocation has exactly one change-log entry");
    assert!(revoked as usize >= acknowledged.len());
    assert!((revoked as usize) < TOTAL, "the kill should land mid-run");
    assert_eq!(revoked % 5, 0, "batches commit whole or not at all");
    drop(db);

    // A restart finishes the job.
    let out = env.run(&[
        "--json",
        "cert",
        "revoke-all",
        "--ca",
        &issuing,
        "--reason",
        "keyCompromise",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["revoked"].as_i64().unwrap() + revoked, TOTAL as i64);
    assert_eq!(
        env.json(&["cert", "list", "--ca", &issuing, "--status", "active"])["value"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}
