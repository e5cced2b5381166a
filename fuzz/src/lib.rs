//! Checks shared by the fuzz targets.

use std::sync::LazyLock;

use cloudpki::snapshot::{OcspDecision, Outcome, Snapshot};
use cloudpki::x509::ocsp::{CertIdHash, ErrorAnswer, ParsedRequest, MAX_NONCE_LEN, MAX_SINGLE_REQUESTS};
use der::{Decode, Encode};
use x509_ocsp::CertId;

/// Before the first load: no CA, so every request is unauthorized.
static EMPTY: LazyLock<Snapshot> = LazyLock::new(Snapshot::empty);

/// What must hold of a request `parse_request` accepted from `wire`.
pub fn check_accepted_request(wire: &[u8], req: &ParsedRequest) {
    assert!(
        !req.questions.is_empty() && req.questions.len() <= MAX_SINGLE_REQUESTS,
        "{} questions accepted",
        req.questions.len()
    );
    if let Some(n) = &req.nonce {
        assert!(!n.is_empty() && n.len() <= MAX_NONCE_LEN, "nonce of {} octets", n.len());
    }
    for q in &req.questions {
        assert_eq!(q.hash, CertIdHash::from_oid(&q.cert_id.hash_algorithm.oid));
        // The CertID is echoed in the response: it must re-encode, decode to
        // itself, and (DER being canonical) be the very bytes the client sent.
        let der = q.cert_id.to_der().expect("an accepted CertID re-encodes");
        let back = CertId::from_der(&der).expect("a re-encoded CertID decodes");
        assert_eq!(back, q.cert_id, "CertID changed across a round trip");
        assert!(
            wire.windows(der.len()).any(|w| w == der.as_slice()),
            "re-encoded CertID is not in the request: {der:02x?}"
        );
    }
    match EMPTY.answer_ocsp(req, 0) {
        OcspDecision::Error(ErrorAnswer::Unauthorized, Outcome::Unauthorized) => {}
        other => panic!("empty snapshot answered {other:?}"),
    }
}
