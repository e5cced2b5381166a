//! For every CA key size x hash: root -> issuing -> leaf, accepted by
//! `openssl verify -x509_strict` and clean under pkilint.

use std::path::PathBuf;

use crate::support::{id, openssl, openssl_verify, pkilint, Env};

fn chain_for(key_size: &str) {
    let env = Env::new();
    let mut to_lint: Vec<PathBuf> = Vec::new();
    for hash in ["sha256", "sha384", "sha512"] {
        let tag = format!("{key_size}-{hash}");
        let root = env.create_ca(&[
            "--type",
            "root",
            "--common-name",
            &format!("Root {tag}"),
            "--key-size",
            key_size,
            "--hash",
            hash,
            "--organization",
            "Contoso",
            "--country",
            "US",
            "--validity-years",
            "25",
        ]);
        assert_eq!(root["certificateKeySize"], key_size);
        assert_eq!(root["cloudCertificationAuthorityHashingAlgorithm"], hash);
        let issuing = env.create_ca(&[
            "--type",
            "issuing",
            "--issuer",
            &id(&root),
            "--common-name",
            &format!("Issuing {tag}"),
            "--key-size",
            key_size,
            "--hash",
            hash,
            "--organization-unit",
            "Devices",
            "--validity-years",
            "10",
        ]);
        assert_eq!(issuing["rootCertificateCommonName"], format!("Root {tag}"));
        let leaf_key: &[&str] = if key_size.starts_with("rsa") {
            &["rsa:2048"]
        } else {
            &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        };
        let csr = env.openssl_csr(&format!("leaf-{tag}"), leaf_key, &format!("/CN=device-{tag}"));
        let leaf = env.save(
            &[
                "cert",
                "issue",
                "--ca",
                &id(&issuing),
                "--csr",
                csr.to_str().unwrap(),
                "--device-name",
                "d1",
                "--pem",
            ],
            &format!("leaf-{tag}.pem"),
        );
        let root_pem = env.save(&["ca", "cert", &id(&root)], &format!("root-{tag}.pem"));
        let issuing_pem = env.save(&["ca", "cert", &id(&issuing)], &format!("issuing-{tag}.pem"));
        openssl_verify(&root_pem, &issuing_pem, &leaf);

        // The signature algorithm really is the configured hash.
        let text = openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]);
        let expected_sig = match (key_size.starts_with("rsa"), hash) {
            (true, h) => format!("{h}WithRSAEncryption"),
            (false, "sha256") => "ecdsa-with-SHA256".into(),
            (false, "sha384") => "ecdsa-with-SHA384".into(),
            (false, _) => "ecdsa-with-SHA512".into(),
        };
        assert!(
            text.contains(&format!("Signature Algorithm: {expected_sig}")),
            "{tag}: {text}"
        );
        assert!(
            text.contains("CA Issuers - URI:http://127.0.0.1:8180/cacerts/"),
            "{tag}: AIA missing"
        );
        assert!(
            text.contains("OCSP - URI:http://127.0.0.1:8180/ocsp"),
            "{tag}: OCSP AIA missing"
        );
        let root_text = openssl(&["x509", "-in", root_pem.to_str().unwrap(), "-noout", "-text"]);
        assert!(
            root_text.contains("CA:TRUE, pathlen:1"),
            "{tag}: root basic constraints"
        );
        assert!(!root_text.contains("CRL Distribution"), "{tag}: a root carries no CDP");
        // 25 years reaches past 2049: GeneralizedTime, which openssl prints the same way.
        let issuing_text = openssl(&["x509", "-in", issuing_pem.to_str().unwrap(), "-noout", "-text"]);
        assert!(
            issuing_text.contains("CA:TRUE, pathlen:0"),
            "{tag}: issuing basic constraints"
        );
        assert!(
            issuing_text.contains(&format!("/crls/{}_v1/current.crl", id(&root))),
            "{tag}: issuing CDP names the root's CRL"
        );
        to_lint.extend([root_pem, issuing_pem, leaf]);
    }
    pkilint("cert", &to_lint);
}

#[test]
fn chain_rsa2048() {
    chain_for("rsa2048");
}
#[test]
fn chain_rsa3072() {
    chain_for("rsa3072");
}
#[test]
fn chain_rsa4096() {
    chain_for("rsa4096");
}
#[test]
fn chain_ec_p256() {
    chain_for("eCP256");
}
#[test]
fn chain_ec_p256k() {
    chain_for("eCP256k");
}
#[test]
fn chain_ec_p384() {
    chain_for("eCP384");
}
#[test]
fn chain_ec_p521() {
    chain_for("eCP521");
}
