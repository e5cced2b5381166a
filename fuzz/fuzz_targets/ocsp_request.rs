//! OCSP request bodies (`POST /ocsp`), then the decision an empty snapshot
//! makes on them; and the hand-read fast path (`parse_simple`), which may
//! only accept what the full parser accepts, with the same one question.
#![no_main]

use cloudpki::x509::ocsp::{parse_request, parse_simple, RequestError, MAX_REQUEST_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let full = parse_request(data);
    match &full {
        Ok(req) => {
            assert!(data.len() <= MAX_REQUEST_LEN);
            cloudpki_fuzz::check_accepted_request(data, req);
        }
        Err(RequestError::TooLarge) => assert!(data.len() > MAX_REQUEST_LEN),
        Err(_) => {}
    }
    if let Some(q) = parse_simple(data) {
        let req = full.as_ref().expect("parse_simple accepted what parse_request refuses");
        assert!(req.nonce.is_none() && req.questions.len() == 1);
        let one = &req.questions[0];
        assert_eq!(one.hash, Some(q.hash));
        assert_eq!(one.cert_id.issuer_name_hash.as_bytes(), q.name_hash);
        assert_eq!(one.cert_id.issuer_key_hash.as_bytes(), q.key_hash);
        assert_eq!(one.cert_id.serial_number.as_bytes(), q.serial);
    }
});
