//! The lifecycle through the CLI, with the refusals an operator sees, and the
//! checks on requests and CA parameters.

use crate::support::{id, openssl, Env};

struct Pki {
    env: Env,
    root: String,
    issuing: String,
}

fn pki() -> Pki {
    let env = Env::new();
    let root = id(&env.create_ca(&[
        "--type",
        "root",
        "--common-name",
        "Contoso Root",
        "--key-size",
        "eCP256",
    ]));
    let issuing = id(&env.create_ca(&[
        "--type",
        "issuing",
        "--issuer",
        &root,
        "--common-name",
        "Contoso Issuing",
        "--key-size",
        "eCP256",
    ]));
    Pki { env, root, issuing }
}

fn issue(p: &Pki, name: &str) -> serde_json::Value {
    let csr = p.env.openssl_csr(
        name,
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &format!("/CN={name}"),
    );
    p.env.json(&[
        "cert",
        "issue",
        "--ca",
        &p.issuing,
        "--csr",
        csr.to_str().unwrap(),
        "--device-name",
        name,
    ])
}

#[test]
fn full_lifecycle_with_refusals() {
    let p = pki();
    let env = &p.env;
    let leaf = issue(&p, "laptop-1");
    assert_eq!(leaf["certificateStatus"], "active");
    assert_eq!(leaf["deviceName"], "laptop-1");
    assert_eq!(leaf["devicePlatform"], "Unknown");

    // Revoke needs a pause first; a root cannot be revoked at all.
    assert!(env
        .fails(&["ca", "revoke", &p.issuing])
        .contains("pause the CA before revoking it"));
    assert!(env
        .fails(&["ca", "revoke", &p.root])
        .contains("a root CA cannot be revoked"));
    assert!(env
        .fails(&["ca", "resume", &p.issuing])
        .contains("only a paused CA can be resumed"));

    // Pause: no issuance; resume: issuance again.
    assert_eq!(
        env.json(&["ca", "pause", &p.issuing])["certificationAuthorityStatus"],
        "paused"
    );
    let csr = env.openssl_csr("blocked", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=blocked");
    let err = env.fails(&["cert", "issue", "--ca", &p.issuing, "--csr", csr.to_str().unwrap()]);
    assert!(err.contains("the CA is paused"), "{err}");
    assert!(env
        .fails(&["ca", "pause", &p.issuing])
        .contains("only an active CA can be paused"));
    assert_eq!(
        env.json(&["ca", "resume", &p.issuing])["certificationAuthorityStatus"],
        "active"
    );
    let second = issue(&p, "laptop-2");
    env.json(&["ca", "pause", &p.issuing]);

    // Revoking the CA needs every active leaf revoked first.
    let err = env.fails(&["ca", "revoke", &p.issuing]);
    assert!(err.contains("2 active leaf certificate(s) remain"), "{err}");
    let revoked = env.json(&["cert", "revoke", &id(&leaf), "--reason", "keyCompromise"]);
    assert_eq!(revoked["certificateStatus"], "revoked");
    assert_eq!(revoked["revocationReason"], "keyCompromise");
    assert!(revoked["revocationDateTime"].is_string());
    let err = env.fails(&["cert", "revoke", &id(&leaf)]);
    assert!(err.contains("already revoked"), "{err}");
    // By serial: lowercase with a leading 00 finds the same leaf.
    let serial = format!("00{}", second["serialNumber"].as_str().unwrap().to_lowercase());
    let by_serial = env.json(&["cert", "revoke", "--serial", &serial]);
    assert_eq!(by_serial["id"], second["id"]);
    assert!(env
        .fails(&["cert", "revoke", "--serial", &serial])
        .contains("already revoked"));

    // Root cannot be deleted while the issuing CA exists; issuing needs revoke first.
    assert!(env
        .fails(&["ca", "delete", &p.root])
        .contains("issuing CA(s) are anchored to this root"));
    assert!(env
        .fails(&["ca", "delete", &p.issuing])
        .contains("revoke an issuing CA before deleting it"));
    let ca = env.json(&["ca", "revoke", &p.issuing]);
    assert_eq!(ca["certificationAuthorityStatus"], "revoked");
    assert!(ca["revocationDateTime"].is_string());
    assert!(env
        .fails(&["ca", "resume", &p.issuing])
        .contains("only a paused CA can be resumed"));
    assert!(env.fails(&["ca", "revoke", &p.issuing]).contains("already revoked"));
    // Leaves of a revoked CA stay listed (and the CA keeps its certificate for AIA).
    let listed = env.json(&["cert", "list", "--ca", &p.issuing]);
    assert_eq!(listed["value"].as_array().unwrap().len(), 2);
    env.save(&["ca", "cert", &p.issuing], "revoked-ca.pem");

    env.json(&["ca", "delete", &p.issuing]);
    assert!(env.fails(&["ca", "show", &p.issuing]).contains("not found"));
    env.json(&["ca", "delete", &p.root]);
    assert_eq!(env.json(&["ca", "list"])["value"].as_array().unwrap().len(), 0);
}

#[test]
fn revoke_all_then_revoke_ca() {
    let p = pki();
    let env = &p.env;
    let csr = env.openssl_csr("bulk", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=bulk");
    let issued = env.json(&[
        "cert",
        "issue-bulk",
        "--ca",
        &p.issuing,
        "--csr",
        csr.to_str().unwrap(),
        "--count",
        "25",
        "--batch",
        "10",
    ]);
    assert_eq!(issued["issued"], 25);
    env.json(&["ca", "pause", &p.issuing]);
    // A staged mass revocation: the 7 oldest first.
    let out = env.run(&[
        "--json",
        "cert",
        "revoke-all",
        "--ca",
        &p.issuing,
        "--batch",
        "5",
        "--limit",
        "7",
    ]);
    assert!(out.status.success());
    let active = env.json(&["cert", "list", "--ca", &p.issuing, "--status", "active"]);
    assert_eq!(active["value"].as_array().unwrap().len(), 18);
    let out = env.run(&["--json", "cert", "revoke-all", "--ca", &p.issuing, "--batch", "10"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let acks: usize = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["acknowledged"].as_array().map(Vec::len))
        .sum();
    assert_eq!(acks, 18, "{text}");
    let active = env.json(&["cert", "list", "--ca", &p.issuing, "--status", "active"]);
    assert_eq!(active["value"].as_array().unwrap().len(), 0);
    assert_eq!(
        env.json(&["ca", "revoke", &p.issuing])["certificationAuthorityStatus"],
        "revoked"
    );
}

#[test]
fn requests_and_parameters_are_checked() {
    let p = pki();
    let env = &p.env;
    // Duplicate commonName (case-insensitive).
    let err = env.fails(&["ca", "create", "--type", "root", "--common-name", "contoso root"]);
    assert!(err.contains("already exists"), "{err}");
    // Any Purpose is refused; an issuing CA may only use its root's EKUs.
    assert!(env
        .fails(&[
            "ca",
            "create",
            "--type",
            "root",
            "--common-name",
            "R2",
            "--eku",
            "2.5.29.37.0"
        ])
        .contains("Any Purpose"));
    let err = env.fails(&[
        "ca",
        "create",
        "--type",
        "issuing",
        "--issuer",
        &p.root,
        "--common-name",
        "I2",
        "--eku",
        "1.3.6.1.5.5.7.3.3",
    ]);
    assert!(err.contains("not defined on the root"), "{err}");
    // An issuing CA cannot outlive its root (root: 10 years by default).
    let err = env.fails(&[
        "ca",
        "create",
        "--type",
        "issuing",
        "--issuer",
        &p.root,
        "--common-name",
        "I3",
        "--validity-years",
        "11",
    ]);
    assert!(err.contains("cannot outlive its root"), "{err}");
    // OIDs the encoder cannot represent: a clear refusal, never a panic (found by fuzzing).
    for eku in ["1.3.6.1.4.1.4294967295", "1.3.6.1.4.1.268435456"] {
        let err = env.fails(&["ca", "create", "--type", "root", "--common-name", "R4", "--eku", eku]);
        assert!(
            err.contains("is not an object identifier") && !err.contains("panicked"),
            "{err}"
        );
    }
    // Country must be two letters.
    assert!(env
        .fails(&[
            "ca",
            "create",
            "--type",
            "root",
            "--common-name",
            "R3",
            "--country",
            "USA"
        ])
        .contains("two letters"));
    // A root issues no leaves.
    let csr = env.openssl_csr("x", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=x");
    assert!(env
        .fails(&["cert", "issue", "--ca", &p.root, "--csr", csr.to_str().unwrap()])
        .contains("root CA issues only issuing CAs"));

    // A CSR whose signature does not verify.
    let tamper = env.openssl_csr(
        "tamperme",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=tamperme",
    );
    let der = env.path("tamper.der");
    openssl(&[
        "req",
        "-in",
        tamper.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ]);
    let mut bytes = std::fs::read(&der).unwrap();
    let pos = bytes.windows(8).position(|w| w == b"tamperme").unwrap(); // the subject CN
    bytes[pos] = b'd';
    std::fs::write(&der, &bytes).unwrap();
    let err = env.fails(&["cert", "issue", "--ca", &p.issuing, "--csr", der.to_str().unwrap()]);
    assert!(err.contains("signature does not verify"), "{err}");

    // A weak key: RSA-1024.
    let weak = env.openssl_csr("weak", &["rsa:1024"], "/CN=weak");
    let err = env.fails(&["cert", "issue", "--ca", &p.issuing, "--csr", weak.to_str().unwrap()]);
    assert!(err.contains("bits of security"), "{err}");

    // A requested EKU the CA does not have (code signing).
    let eku_csr = env.path("eku.csr");
    openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        env.path("eku.key").to_str().unwrap(),
        "-subj",
        "/CN=signer",
        "-addext",
        "extendedKeyUsage=codeSigning",
        "-out",
        eku_csr.to_str().unwrap(),
    ]);
    let err = env.fails(&["cert", "issue", "--ca", &p.issuing, "--csr", eku_csr.to_str().unwrap()]);
    assert!(
        err.contains("does not have the requested EKU 1.3.6.1.5.5.7.3.3"),
        "{err}"
    );

    // A CSR asking for a subset of the CA's EKUs gets exactly that subset.
    let client_csr = env.path("client.csr");
    openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        env.path("client.key").to_str().unwrap(),
        "-subj",
        "/CN=client",
        "-addext",
        "extendedKeyUsage=clientAuth",
        "-addext",
        "subjectAltName=DNS:client.example",
        "-out",
        client_csr.to_str().unwrap(),
    ]);
    let leaf = env.json(&[
        "cert",
        "issue",
        "--ca",
        &p.issuing,
        "--csr",
        client_csr.to_str().unwrap(),
        "--device-platform",
        "windows10andlater",
    ]);
    assert_eq!(leaf["extendedKeyUsages"], serde_json::json!(["1.3.6.1.5.5.7.3.2"]));
    assert_eq!(leaf["devicePlatform"], "Windows10AndLater");
    let pem = env.save(&["cert", "show", &id(&leaf), "--pem"], "client.pem");
    let text = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains("DNS:client.example"), "SAN copied from the CSR: {text}");
}

#[test]
fn public_url_is_fixed_and_ca_limit_applies() {
    let env = Env::new();
    let out = env.run(&["--public-url", "http://pki.contoso.test:8180", "init"]);
    assert!(out.status.success());
    let err = env.fails(&["--public-url", "http://elsewhere:1", "ca", "list"]);
    assert!(err.contains("cannot change"), "{err}");
    let root = env.create_ca(&["--type", "root", "--common-name", "R"]);
    assert_eq!(
        root["certificateRevocationListUrl"],
        format!("http://pki.contoso.test:8180/crls/{}_v1/current.crl", id(&root))
    );
    let err = env.fails(&[
        "--max-cas",
        "1",
        "ca",
        "create",
        "--type",
        "root",
        "--common-name",
        "R2",
    ]);
    assert!(err.contains("limit of 1"), "{err}");
}

#[test]
fn keys_are_sealed_at_rest_and_never_shown() {
    let env = Env::new();
    let root = env.create_ca(&[
        "--type",
        "root",
        "--common-name",
        "Sealed Root",
        "--key-size",
        "rsa2048",
    ]);
    let json = serde_json::to_string(&root).unwrap();
    assert!(!json.to_lowercase().contains("private"));
    // The database holds no plaintext PKCS#8 (its RSA header bytes).
    let db = std::fs::read(env.data_dir().join("cloudpki.db")).unwrap();
    let wal = std::fs::read(env.data_dir().join("cloudpki.db-wal")).unwrap_or_default();
    let pkcs8_rsa_prefix = [
        0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    for blob in [&db, &wal] {
        assert!(
            !blob.windows(pkcs8_rsa_prefix.len()).any(|w| w == pkcs8_rsa_prefix),
            "plaintext PKCS#8 found"
        );
    }
    // A wrong key-encryption key is refused with a clear error.
    let out = env
        .command()
        .env("CLOUDPKI_KEK", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .args(["ca", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another key-encryption key"));
}
