//! Operator-supplied certificate files: PEM bundles, DER, bare base64.
#![no_main]

use cloudpki::x509::pem;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (i, labels) in [
        &["CERTIFICATE"][..],
        &["CERTIFICATE REQUEST"][..],
        &["CERTIFICATE", "X509 CRL"][..],
    ]
    .into_iter()
    .enumerate()
    {
        let _ = pem::decode_one(data, labels);
        let Ok(docs) = pem::decode_all(data, labels) else {
            continue;
        };
        assert!(!docs.is_empty());
        if i > 0 {
            continue;
        }
        // Whatever came out goes back through PEM unchanged (checked for one
        // label set: the round trip does not depend on it, and is costly).
        for der in docs.iter().filter(|d| !d.is_empty()) {
            let text = pem::encode("CERTIFICATE", der).expect("PEM encoding");
            assert_eq!(
                pem::decode_all(text.as_bytes(), &["CERTIFICATE"]).expect("own PEM decodes"),
                vec![der.clone()]
            );
        }
    }
});
