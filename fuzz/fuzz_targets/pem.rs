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
        let docs = pem::decode_all(data, labels);
        if let Ok(docs) = &docs {
            assert!(!docs.is_empty());
        }
        if i > 0 {
            continue;
        }
        // decode_one is decode_all and a count (decoding again is the costly
        // part, so once, for one label set): exactly one document, or an error.
        match (pem::decode_one(data, labels), &docs) {
            (Ok(one), Ok(all)) => assert_eq!(all, &vec![one]),
            (Err(_), Ok(all)) => assert_ne!(all.len(), 1),
            (Ok(_), Err(e)) => panic!("decode_one accepted what decode_all refused: {e}"),
            (Err(_), Err(_)) => {}
        }
        let Ok(docs) = docs else {
            continue;
        };
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
