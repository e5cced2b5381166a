//! Externally signed CA certificates uploaded by operators: parsing, the
//! signature check against fixed issuer keys (and the certificate's own key,
//! as for a self-signed anchor), and everything the upload path reads.
#![no_main]

use std::sync::LazyLock;

use cloudpki::x509::cert::ParsedCert;
use cloudpki::x509::{names, normalize_serial};
use der::Decode;
use libfuzzer_sys::fuzz_target;
use spki::SubjectPublicKeyInfoOwned;

/// The public keys of the seed roots (see "Seeds" in ../README.md), so seeds
/// signed by them reach a successful verification.
static ISSUERS: LazyLock<[SubjectPublicKeyInfoOwned; 2]> = LazyLock::new(|| {
    [
        SubjectPublicKeyInfoOwned::from_der(include_bytes!("../fixtures/root-ec-p256.spki.der")).expect("fixture"),
        SubjectPublicKeyInfoOwned::from_der(include_bytes!("../fixtures/root-rsa-2048.spki.der")).expect("fixture"),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Ok(cert) = ParsedCert::from_der(data) else {
        return;
    };
    for issuer in ISSUERS.iter() {
        let _ = cert.verify_signed_by(issuer);
    }
    let _ = cert.verify_signed_by(&cert.tbs().subject_public_key_info);
    let _ = cert.basic_constraints();
    let _ = cert.key_usage();
    let _ = cert.ekus();
    let _ = cert.subject_key_id();
    let _ = cert.ca_issuers_uri();
    let _ = cert.not_before();
    let _ = cert.not_after();
    let _ = cert.is_ca();
    let _ = cert.is_self_issued();
    let _ = names::graph_subject_name(&cert.tbs().subject);
    let _ = names::graph_issuer_name(&cert.tbs().issuer);
    let _ = names::common_name(&cert.tbs().subject);
    let _ = cloudpki::x509::thumbprint(&cert.der);
    // The serial as stored (a CA's, on upload, which refuses non-positive
    // serials) is already in the form typed serials normalize to.
    let hex = cert.serial_hex();
    if cert.check_serial().is_ok() {
        assert_eq!(normalize_serial(&hex).as_deref(), Some(hex.as_str()), "serial {hex}");
    }
});
