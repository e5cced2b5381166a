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

    // Every CRL verifies and matches the store.
    let out = env.run(&["crl", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let line = |ca: &str| {
        text.lines()
            .find(|l| l.contains(ca))
            .unwrap_or_else(|| panic!("no line for {ca}: {text}"))
            .to_owned()
    };
    assert!(
        line(&root).starts_with("ok") && line(&root).contains(": 0 entries"),
        "{text}"
    );
    assert!(
        line(&issuing).starts_with("ok") && line(&issuing).contains(": 1 entries"),
        "{text}"
    );
    assert!(line(&issuing).contains(&format!("{}/crls/{issuing}_v1/current.crl", server.url)));
    let json = env.json(&["crl", "verify", "--ca", &issuing]);
    assert_eq!((json["ok"].as_bool(), json["entries"].as_u64()), (Some(true), Some(1)));

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
    assert!(
        text.starts_with("FAIL") && text.contains("1 revoked but not listed") && text.contains(&serial),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 CRL(s) differ"));
    server.stop();
}
