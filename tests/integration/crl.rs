//! CRLs as a relying party fetches them, checked against the store by
//! `cloudpki crl verify`.

use crate::support::*;

#[test]
fn crl_verify_checks_every_served_crl_against_the_store() {
    let env = Env::new();
    let server = env.server();
    let (root, issuing) = env.ec_hierarchy("Verify");
    let csr = env.openssl_csr("leaf", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=leaf");
    let csr = csr.to_str().unwrap();
    let leaves: Vec<serde_json::Value> = (0..3)
        .map(|_| env.json(&["cert", "issue", "--ca", &issuing, "--csr", csr]))
        .collect();
    env.json(&["cert", "revoke", &id(&leaves[0]), "--reason", "keyCompromise"]);

    // Every CRL verifies and matches the store: the root's one CRL, and the
    // issuing CA's current.crl and its 16 partitions.
    let out = env.run(&["crl", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines = |ca: &str| -> Vec<String> { text.lines().filter(|l| l.contains(ca)).map(str::to_owned).collect() };
    let entries = |l: &str| -> u64 {
        let (_, rest) = l.split_once(": ").unwrap();
        rest.split_once(' ').unwrap().0.parse().unwrap()
    };
    let root_lines = lines(&root);
    assert_eq!(root_lines.len(), 1, "{text}");
    assert!(
        root_lines[0].starts_with("ok") && entries(&root_lines[0]) == 0,
        "{text}"
    );
    let issuing_lines = lines(&issuing);
    assert_eq!(issuing_lines.len(), 17, "{text}");
    assert!(issuing_lines.iter().all(|l| l.starts_with("ok")), "{text}");
    let revoked_url = leaves[0]["crlDistributionPointUrl"].as_str().unwrap();
    assert!(revoked_url.starts_with(&format!("{}/crls/{issuing}_v1/", server.url)));
    for l in &issuing_lines {
        let want = u64::from(l.ends_with(&format!("  {revoked_url}")));
        assert_eq!(entries(l), want, "only the revoked leaf's partition lists it: {l}");
    }
    assert!(issuing_lines[0].ends_with(&format!("{}/crls/{issuing}_v1/current.crl", server.url)));
    // --json: one object per CRL.
    let out = env.run(&["crl", "verify", "--ca", &issuing, "--json"]);
    assert!(out.status.success());
    let objects: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 17);
    assert!(objects.iter().all(|o| o["ok"] == true));
    let total: u64 = objects.iter().map(|o| o["entries"].as_u64().unwrap()).sum();
    assert_eq!(total, 1);

    // A revocation the CRL does not show (written behind the engine's back,
    // so nothing republished) is a difference: exit 1, naming the serial.
    let serial = leaves[1]["serialNumber"].as_str().unwrap().to_owned();
    let db = rusqlite::Connection::open(env.data_dir().join("cloudpki.db")).unwrap();
    db.execute(
        "UPDATE leaves SET revoked_at = 1700000000, revocation_reason = 1 WHERE id = ?1",
        [id(&leaves[1])],
    )
    .unwrap();
    drop(db);
    let out = env.run(&["crl", "verify", "--ca", &issuing]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert!(
        failed[0].contains("1 revoked but not listed")
            && failed[0].contains(&serial)
            && failed[0].contains(leaves[1]["crlDistributionPointUrl"].as_str().unwrap()),
        "the partition of that leaf: {text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 CRL(s) differ"));
    server.stop();
}
