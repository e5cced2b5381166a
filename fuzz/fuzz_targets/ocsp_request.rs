//! OCSP request bodies (`POST /ocsp`), then the decision an empty snapshot
//! makes on them.
#![no_main]

use cloudpki::x509::ocsp::{parse_request, RequestError, MAX_REQUEST_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(req) => {
            assert!(data.len() <= MAX_REQUEST_LEN);
            cloudpki_fuzz::check_accepted_request(data, &req);
        }
        Err(RequestError::TooLarge) => assert!(data.len() > MAX_REQUEST_LEN),
        Err(_) => {}
    }
});
