//! PKCS#10 requests from devices (`csr::verify`), and what the issuing path
//! reads from an accepted one.
#![no_main]

use cloudpki::x509::{csr, names, X509Error};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // 112 bits is the leaf minimum; 0 lets weak keys through to the
    // signature check. The two differ only for a weak key: verify (and check
    // the signature) once, twice only when 112 refused the key as weak.
    let first = csr::verify(data, 112);
    let second = matches!(first, Err(X509Error::WeakKey(_))).then(|| csr::verify(data, 0));
    for v in std::iter::once(first).chain(second).flatten() {
        let _ = names::graph_subject_name(&v.subject);
        let _ = names::common_name(&v.subject);
        let _ = cloudpki::x509::keys::key_algorithm_of(&v.public_key);
        let _ = cloudpki::x509::cert::leaf_key_usage(&v.public_key);
        let _ = cloudpki::x509::cert::key_identifier(&v.public_key);
    }
});
