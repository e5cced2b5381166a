//! PKCS#10 requests from devices (`csr::verify`), and what the issuing path
//! reads from an accepted one.
#![no_main]

use cloudpki::x509::{csr, names};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // 112 bits is the leaf minimum; 0 lets weak keys through to the
    // signature check.
    for min in [112, 0] {
        if let Ok(v) = csr::verify(data, min) {
            let _ = names::graph_subject_name(&v.subject);
            let _ = names::common_name(&v.subject);
            let _ = cloudpki::x509::keys::key_algorithm_of(&v.public_key);
            let _ = cloudpki::x509::cert::leaf_key_usage(&v.public_key);
            let _ = cloudpki::x509::cert::key_identifier(&v.public_key);
        }
    }
});
