//! The `{base64}` of `GET /ocsp/{base64}`: lenient decoding, then the
//! request parser and the decision of an empty snapshot.
#![no_main]

use base64ct::{Base64, Encoding};
use cloudpki::http::responder::decode_get_path;
use cloudpki::x509::ocsp::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Some(der) = decode_get_path(raw) else {
        return;
    };
    assert!(
        !raw.is_empty() && raw.len() <= 4096,
        "path of {} bytes accepted",
        raw.len()
    );
    assert!(
        der.len() <= raw.len(),
        "decoding grew {} bytes into {}",
        raw.len(),
        der.len()
    );
    // What decodes re-encodes (canonically) to a path that decodes the same.
    if !der.is_empty() {
        assert_eq!(
            decode_get_path(&Base64::encode_string(&der)).as_deref(),
            Some(der.as_slice())
        );
    }
    if let Ok(req) = parse_request(&der) {
        cloudpki_fuzz::check_accepted_request(&der, &req);
    }
});
