//! SCEP pkiMessages from devices (`scep::parse`), the EnvelopedData inside
//! (`scep::open`), and the CertRep built back for whatever header parsed:
//! nothing a device sends may panic the server or make it build a reply
//! that does not encode. Also the EST request path: the URL's route and
//! the base64 body read as a CSR.
#![no_main]

use std::sync::LazyLock;

use cloudpki::x509::scep::{self, device, FailInfo, RaDecryptor, Refusal, Reply};
use cloudpki::x509::{HashAlgorithm, KeyAlgorithm, SoftwareKey};
use libfuzzer_sys::fuzz_target;

struct Ra {
    key: SoftwareKey,
    decryptor: RaDecryptor,
    cert: x509_cert::Certificate,
}

/// One RA for the whole run (an RSA key is slow to make).
static RA: LazyLock<Ra> = LazyLock::new(|| {
    let (key, pkcs8) = SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256).expect("RA key");
    let cert = device::self_signed(&key, "Fuzz RA").expect("RA certificate");
    let decryptor = RaDecryptor::from_pkcs8(&pkcs8).expect("RA decryptor");
    Ra { key, decryptor, cert }
});

fuzz_target!(|data: &[u8]| {
    let ra = &*RA;
    if let Ok(req) = scep::parse(data) {
        assert!(!req.header.transaction_id.is_empty() && req.header.transaction_id.len() <= 128);
        assert_eq!(req.header.sender_nonce.len(), 16);
        if let Ok(content) = &req.verified {
            let _ = scep::open(content, &[(&ra.cert, &ra.decryptor)]);
        }
        // Every parsed header gets an answer that encodes (or a typed error:
        // a transactionID that is not a PrintableString cannot be echoed).
        let refusal = Refusal::new(FailInfo::BadRequest, "fuzz");
        let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let _ = scep::cert_rep(&ra.key, &ra.cert, &req.header, Reply::Failure(&refusal), now);
    }
    // The same bytes as the envelope inside a request, and as GetCert's content.
    let _ = scep::open(data, &[(&ra.cert, &ra.decryptor)]);
    let _ = scep::issuer_and_serial(data);
    // EST: a path, and a body.
    if let Ok(path) = std::str::from_utf8(data) {
        if let Some((ca, op)) = cloudpki::enrol::est::route(path) {
            assert!(!ca.is_empty() && !ca.contains('/') && !op.contains('/'));
        }
    }
    if let Some(der) = cloudpki::enrol::est::decode_base64(data) {
        let _ = cloudpki::x509::csr::verify(&der, 112);
    }
});
