//! An issuing CA signed by an external root made with openssl: CSR out,
//! signed certificate in, and everything else refused.

use crate::support::{id, openssl, openssl_verify, pkilint, Env};

const CA_EXT: &str = "[v3_sub]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\nextendedKeyUsage=serverAuth,clientAuth\nauthorityInfoAccess=caIssuers;URI:http://adcs.contoso.test/root.cer\n[v3_leafish]\nbasicConstraints=critical,CA:FALSE\n";

struct ExternalRoot {
    key: String,
    cert: String,
    ext: String,
}

fn external_root(env: &Env, name: &str) -> ExternalRoot {
    let key = env.path(&format!("{name}.key")).to_str().unwrap().to_owned();
    let cert = env.path(&format!("{name}.pem")).to_str().unwrap().to_owned();
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-days",
        "3650",
        "-subj",
        &format!("/O=Contoso/CN={name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    let ext = env.path("ext.cnf").to_str().unwrap().to_owned();
    std::fs::write(&ext, CA_EXT).unwrap();
    ExternalRoot { key, cert, ext }
}

fn sign(env: &Env, root: &ExternalRoot, csr: &str, section: &str, out: &str) -> String {
    let out = env.path(out).to_str().unwrap().to_owned();
    openssl(&[
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        &root.cert,
        "-CAkey",
        &root.key,
        "-CAcreateserial",
        "-days",
        "1000",
        "-sha256",
        "-extfile",
        &root.ext,
        "-extensions",
        section,
        "-out",
        &out,
    ]);
    out
}

#[test]
fn external_root_end_to_end() {
    let env = Env::new();
    let ca = env.create_ca(&[
        "--type",
        "external",
        "--common-name",
        "Contoso BYOCA",
        "--key-size",
        "rsa2048",
    ]);
    assert_eq!(ca["certificationAuthorityStatus"], "signingPending");
    assert_eq!(
        ca["cloudCertificationAuthorityType"],
        "issuingCertificationAuthorityWithExternalRoot"
    );
    assert!(ca["certificateSigningRequest"].is_string());
    let ca_id = id(&ca);

    // Nothing issues while signing is pending.
    let leaf_csr = env.openssl_csr("dev", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=dev");
    assert!(env
        .fails(&["cert", "issue", "--ca", &ca_id, "--csr", leaf_csr.to_str().unwrap()])
        .contains("signingPending"));

    // The CSR is a valid PKCS#10 request for a CA.
    let csr = env.save(&["ca", "csr", &ca_id], "byoca.csr");
    let text = openssl(&["req", "-in", csr.to_str().unwrap(), "-noout", "-verify", "-text"]);
    assert!(
        text.contains("CN = Contoso BYOCA") || text.contains("CN=Contoso BYOCA"),
        "{text}"
    );
    assert!(text.contains("CA:TRUE"), "{text}");
    let csr = csr.to_str().unwrap();

    let root = external_root(&env, "ADCS Root");
    let other_root = external_root(&env, "Other Root");

    // Refused: a certificate for another key.
    let other_csr = env.openssl_csr("other", &["rsa:2048"], "/CN=Contoso BYOCA");
    let wrong_key = sign(&env, &root, other_csr.to_str().unwrap(), "v3_sub", "wrong-key.pem");
    let err = env.fails(&["ca", "upload", &ca_id, "--cert", &wrong_key, "--chain", &root.cert]);
    assert!(err.contains("not for this CA's key"), "{err}");
    // Refused: not a CA certificate.
    let not_ca = sign(&env, &root, csr, "v3_leafish", "not-ca.pem");
    let err = env.fails(&["ca", "upload", &ca_id, "--cert", &not_ca, "--chain", &root.cert]);
    assert!(err.contains("not a CA certificate"), "{err}");
    // Refused: a chain that did not sign it.
    let signed = sign(&env, &root, csr, "v3_sub", "signed.pem");
    let err = env.fails(&["ca", "upload", &ca_id, "--cert", &signed, "--chain", &other_root.cert]);
    assert!(err.contains("no certificate in the chain signed"), "{err}");
    assert_eq!(
        env.json(&["ca", "show", &ca_id])["certificationAuthorityStatus"],
        "signingPending"
    );

    // Accepted: the right certificate and chain.
    let ca = env.json(&["ca", "upload", &ca_id, "--cert", &signed, "--chain", &root.cert]);
    assert_eq!(ca["certificationAuthorityStatus"], "active");
    assert_eq!(ca["issuerCommonName"], "ADCS Root");
    assert_eq!(ca["rootCertificateCommonName"], "ADCS Root");
    assert_eq!(
        ca["certificationAuthorityIssuerUri"],
        "http://adcs.contoso.test/root.cer"
    );
    assert!(ca["certificateSigningRequest"].is_null());
    assert!(ca["validityEndDateTime"].is_string());
    // Uploading twice is refused.
    assert!(env
        .fails(&["ca", "upload", &ca_id, "--cert", &signed, "--chain", &root.cert])
        .contains("only while signing is pending"));

    // It now issues leaves that chain to the external root.
    let leaf = env.save(
        &[
            "cert",
            "issue",
            "--ca",
            &ca_id,
            "--csr",
            leaf_csr.to_str().unwrap(),
            "--pem",
        ],
        "leaf.pem",
    );
    let ca_pem = env.save(&["ca", "cert", &ca_id], "byoca.pem");
    openssl_verify(std::path::Path::new(&root.cert), &ca_pem, &leaf);
    let chain = env.save(&["ca", "cert", &ca_id, "--chain"], "byoca-chain.pem");
    assert_eq!(
        std::fs::read_to_string(&chain)
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    pkilint("cert", &[leaf]);
}
