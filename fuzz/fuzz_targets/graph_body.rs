//! Graph JSON request bodies (`POST`/`PATCH` on the management API): every
//! body type the API deserialises, then the checks its handler makes before
//! calling the domain, and the domain's checks that need no store.
#![no_main]

use cloudpki::api::fuzzing::{graph_bodies, BODY_KINDS};
use http::StatusCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The body as sent with a JSON content type; and once as sent without
    // one (415 for anything but an empty body, which counts as `{}`).
    for (ctype, json) in [("application/json; charset=utf-8", true), ("text/plain", false)] {
        let results = graph_bodies(data, ctype);
        assert_eq!(results.len(), BODY_KINDS.len());
        for (kind, r) in BODY_KINDS.iter().zip(results) {
            let Err(e) = r else {
                assert!(json || data.is_empty(), "{kind} accepted a text/plain body");
                continue;
            };
            // A client's body is a client error: 400 (or 415), never a 500.
            let expected = if json || data.is_empty() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            };
            assert_eq!(e.status, expected, "{kind}: {e:?}");
        }
        if data.is_empty() {
            break;
        }
    }
});
