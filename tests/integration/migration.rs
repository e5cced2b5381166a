//! A store written by the release before typed records (schema version 7:
//! Graph JSON documents in `doc` columns, audit scope tags as JSON) opens in
//! this build. The versioned migration moves every fact into a column of its
//! own, and nothing a client sees changes. The fixture was made by that
//! release with `scripts/make-store-fixture.sh` and is committed.

use std::path::Path;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::support::*;

fn fixture() -> std::path::PathBuf {
    repo().join("tests/fixtures/store-v7")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// What the old release printed, as this build must print it: timestamps are
/// kept to the second now, and a validity that has ended since the fixture
/// was made reads as expired.
fn expected(mut v: Value, status_key: &str) -> Value {
    let now = OffsetDateTime::now_utc();
    let obj = v.as_object_mut().unwrap();
    for key in ["createdDateTime", "lastModifiedDateTime"] {
        if let Some(Value::String(s)) = obj.get(key) {
            let t = OffsetDateTime::parse(s, &Rfc3339)
                .unwrap()
                .replace_nanosecond(0)
                .unwrap();
            obj.insert(key.into(), Value::String(t.format(&Rfc3339).unwrap()));
        }
    }
    let ended = obj
        .get("validityEndDateTime")
        .and_then(Value::as_str)
        .is_some_and(|s| OffsetDateTime::parse(s, &Rfc3339).unwrap() <= now);
    let status = obj.get(status_key).and_then(Value::as_str).unwrap_or_default();
    if ended && matches!(status, "active" | "paused") {
        obj.insert(status_key.into(), Value::String("expired".into()));
    }
    v
}

fn by_id(list: &Value) -> std::collections::BTreeMap<String, Value> {
    list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["id"].as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

#[test]
fn store_made_by_the_previous_release_migrates_forward() {
    let env = Env::new();
    copy_dir(&fixture().join("data"), &env.data_dir());
    let old_cas: Value = serde_json::from_slice(&std::fs::read(fixture().join("cas.json")).unwrap()).unwrap();
    let old_leaves: Value = serde_json::from_slice(&std::fs::read(fixture().join("leaves.json")).unwrap()).unwrap();

    // Every CA and every leaf reads exactly as the old release showed it.
    let cas = by_id(&env.json(&["ca", "list"]));
    let old = by_id(&old_cas);
    assert_eq!(cas.len(), 4, "four live CAs (the deleted one stays a tombstone)");
    for (id, was) in &old {
        // Existing CAs stay unpartitioned, without deltas: their one CRL is current.crl.
        let mut want = expected(was.clone(), "certificationAuthorityStatus");
        let crl = was["certificateRevocationListUrl"].as_str().unwrap().to_owned();
        let obj = want.as_object_mut().unwrap();
        obj.insert("crlPartitionCount".into(), 0.into());
        obj.insert("crlPartitionUrls".into(), serde_json::json!([crl]));
        obj.insert(
            "crlPartitionsUrl".into(),
            crl.replace("current.crl", "partitions.json").into(),
        );
        obj.insert("deltaCrlEnabled".into(), false.into());
        // Issuing CAs now answer SCEP (roots keep null).
        if was["cloudCertificationAuthorityType"] != "rootCertificationAuthority" {
            let base = crl.split("/crls/").next().unwrap().to_owned();
            obj.insert("scepServerUrl".into(), format!("{base}/scep/{id}").into());
        }
        assert_eq!(cas[id], want, "CA {id}");
    }
    let issuing = old
        .values()
        .find(|c| c["commonName"] == "Fixture Issuing")
        .map(id)
        .unwrap();
    let leaves = by_id(&env.json(&["cert", "list", "--ca", &issuing]));
    let old = by_id(&old_leaves);
    assert_eq!(leaves.len(), 3);
    for (id, was) in &old {
        assert_eq!(leaves[id], expected(was.clone(), "certificateStatus"), "leaf {id}");
    }
    let revoked = leaves.values().find(|l| l["certificateStatus"] == "revoked").unwrap();
    assert_eq!(revoked["revocationReason"], "keyCompromise");
    let described = leaves.values().find(|l| l["deviceName"] == "laptop-1").unwrap();
    assert_eq!(described["userPrincipalName"], "ada@example.test");
    assert_eq!(described["devicePlatform"], "Windows10AndLater");

    // The schema moved on: no documents left, audit scope tags are lists.
    let db = rusqlite::Connection::open(env.data_dir().join("cloudpki.db")).unwrap();
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert!(version >= 8, "schema version {version}");
    assert!(db.prepare("SELECT doc FROM cas").is_err(), "cas.doc is gone");
    assert!(db.prepare("SELECT doc FROM leaves").is_err(), "leaves.doc is gone");
    let json_tags: i64 = db
        .query_row(
            "SELECT count(*) FROM audit_events WHERE scope_tags LIKE '[%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(json_tags, 0);
    let root_tags: String = db
        .query_row(
            "SELECT scope_tags FROM audit_events WHERE activity LIKE 'Create%' ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(root_tags, "0 7");
    let deleted: (String, Option<i64>) = db
        .query_row(
            "SELECT display_name, deleted_at FROM cas WHERE common_name = 'Fixture Deleted'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(deleted.0, "Fixture Deleted");
    assert!(deleted.1.is_some());
    drop(db);

    // And the migrated store keeps working: the sealed key opens, a new leaf
    // is issued and revoked.
    let csr = env.openssl_csr("m", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=after");
    let leaf = env.json(&["cert", "issue", "--ca", &issuing, "--csr", csr.to_str().unwrap()]);
    assert_eq!(
        leaf["certificationAuthorityIssuerUri"],
        cas[&issuing]["certificateDownloadUrl"]
    );
    let revoked = env.json(&["cert", "revoke", &id(&leaf), "--reason", "superseded"]);
    assert_eq!(revoked["certificateStatus"], "revoked");
    assert_eq!(
        leaf["crlDistributionPointUrl"],
        cas[&issuing]["certificateRevocationListUrl"]
    );

    // Partitions are added for new issuance; earlier leaves keep current.crl.
    let ca = env.json(&["ca", "crl-partitions", &issuing, "4"]);
    assert_eq!(ca["crlPartitionCount"], 4);
    let urls = ca["crlPartitionUrls"].as_array().unwrap();
    assert_eq!(urls.len(), 5, "{urls:?}");
    assert_eq!(urls[0], cas[&issuing]["certificateRevocationListUrl"]);
    let partitioned = env.json(&["cert", "issue", "--ca", &issuing, "--csr", csr.to_str().unwrap()]);
    let url = partitioned["crlDistributionPointUrl"].as_str().unwrap();
    assert!(urls[1..].iter().any(|u| u == url), "{url} in {urls:?}");
    let fewer = env.run(&["ca", "crl-partitions", &issuing, "2"]);
    assert!(!fewer.status.success(), "partitions never shrink");
    let list = env.json(&["cert", "list", "--ca", &issuing]);
    let list = list["value"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    let on_current = list
        .iter()
        .filter(|l| l["crlDistributionPointUrl"] == cas[&issuing]["certificateRevocationListUrl"])
        .count();
    assert_eq!(on_current, 4, "leaves issued before partitioning keep current.crl");
}
