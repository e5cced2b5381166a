//! Property tests for every parser of untrusted input: OCSP requests (POST
//! bodies and GET paths), PKCS#10 CSRs, PEM/DER/base64 files, typed serial
//! numbers and uploaded CA certificates.
//!
//! Two kinds of property: nothing panics, whatever the bytes (random bytes,
//! random DER-shaped trees, truncated and bit-flipped valid objects); and
//! valid objects round-trip (what a client encodes is what we decode).
//!
//! Case counts are small so the suite stays fast in debug builds; set
//! `PROPTEST_CASES=N` to run N cases for every property instead. Failures are
//! not persisted to a regressions file: proptest prints the shrunk input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use base64ct::{Base64, Base64Unpadded, Base64Url, Base64UrlUnpadded, Encoding};
use cloudpki::http::responder::decode_get_path;
use cloudpki::snapshot::{OcspDecision, Outcome, Snapshot};
use cloudpki::x509::cert::{self, CertRequest, CertRole, ParsedCert, RevocationPointers};
use cloudpki::x509::names::{self, SubjectParts};
use cloudpki::x509::ocsp::{self as cocsp, CertIdHash, ErrorAnswer, ParsedRequest, RequestError};
use cloudpki::x509::{csr, normalize_serial, oids, pem, HashAlgorithm, KeyAlgorithm, Signer, SoftwareKey, X509Error};
use der::asn1::{Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use proptest::prelude::*;
use proptest::sample::Index;
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{CertId, OcspRequest, Request, TbsRequest, Version};

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// `cases` cases (or `PROPTEST_CASES` when set), no regressions file.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// One DER TLV with a definite length.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let n = value.len();
    let mut out = vec![tag];
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xff {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(value);
    out
}

/// Flips one bit per (position, bit) pair.
fn flip(mut der: Vec<u8>, flips: &[(Index, u8)]) -> Vec<u8> {
    if !der.is_empty() {
        for (i, bit) in flips {
            let at = i.index(der.len());
            der[at] ^= 1 << (bit % 8);
        }
    }
    der
}

static EC_KEY: LazyLock<SoftwareKey> = LazyLock::new(|| {
    SoftwareKey::generate(KeyAlgorithm::EcP256, HashAlgorithm::Sha256)
        .unwrap()
        .0
});
static EC384_KEY: LazyLock<SoftwareKey> = LazyLock::new(|| {
    SoftwareKey::generate(KeyAlgorithm::EcP384, HashAlgorithm::Sha384)
        .unwrap()
        .0
});
static RSA_KEY: LazyLock<SoftwareKey> = LazyLock::new(|| {
    SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256)
        .unwrap()
        .0
});

fn key(which: u8) -> &'static SoftwareKey {
    match which % 3 {
        0 => &EC_KEY,
        1 => &EC384_KEY,
        _ => &RSA_KEY,
    }
}

/// OIDs that steer the parsers down interesting paths when they appear in
/// random DER.
static INTERESTING_OIDS: [ObjectIdentifier; 16] = [
    cocsp::SHA1,
    cocsp::SHA256,
    cocsp::SHA512,
    cocsp::NONCE,
    oids::RSA_ENCRYPTION,
    oids::SHA256_WITH_RSA,
    oids::EC_PUBLIC_KEY,
    oids::ECDSA_SHA256,
    oids::SECP256R1,
    oids::SECP256K1,
    oids::EXTENSION_REQUEST,
    oids::CN,
    oids::KP_CLIENT_AUTH,
    ObjectIdentifier::new_unwrap("2.5.29.19"), // basicConstraints
    ObjectIdentifier::new_unwrap("2.5.29.37"), // extKeyUsage
    ObjectIdentifier::new_unwrap("2.5.29.17"), // subjectAltName
];

/// Random DER-shaped input: nested TLVs with plausible tags and correct
/// lengths, so the decoders get past the outer SEQUENCE.
fn der_tree() -> impl Strategy<Value = Vec<u8>> {
    const PRIMITIVE: &[u8] = &[
        0x01, 0x02, 0x03, 0x04, 0x05, 0x0a, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x1e, 0x80, 0x81, 0x82, 0x86, 0x87,
    ];
    const CONSTRUCTED: &[u8] = &[0x30, 0x30, 0x30, 0x31, 0xa0, 0xa1, 0xa2, 0xa3];
    let leaf = prop_oneof![
        3 => (prop::sample::select(PRIMITIVE), prop::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(t, v)| tlv(t, &v)),
        2 => prop::sample::select(&INTERESTING_OIDS[..]).prop_map(|o| tlv(0x06, o.as_bytes())),
        1 => Just(vec![0x05, 0x00]),
        1 => Just(vec![0x02, 0x01, 0x00]),
    ];
    leaf.prop_recursive(5, 96, 6, |inner| {
        (prop::sample::select(CONSTRUCTED), prop::collection::vec(inner, 0..6))
            .prop_map(|(t, kids)| tlv(t, &kids.concat()))
    })
}

/// Raw random bytes, or DER-shaped trees.
fn untrusted_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        der_tree(),
        der_tree().prop_map(|d| tlv(0x30, &d)),
    ]
}

// ---------------------------------------------------------------------------
// OCSP requests
// ---------------------------------------------------------------------------

/// Arcs stay below 2^28: const-oid 0.9 encodes larger ones in `from_arcs`
/// but refuses to decode them (its `Display` then panics), so they cannot
/// come from the wire and would only break the test's own formatting.
fn any_oid() -> impl Strategy<Value = ObjectIdentifier> {
    (0u32..=2, 0u32..=39, prop::collection::vec(0u32..(1 << 28), 0..5)).prop_filter_map("valid OID", |(a, b, rest)| {
        ObjectIdentifier::from_arcs([a, b].into_iter().chain(rest))
            .ok()
            // const-oid encodes some arcs (0.0.0) it will not decode again.
            .filter(|oid| ObjectIdentifier::from_bytes(oid.as_bytes()).is_ok())
    })
}

fn hash_algorithm() -> impl Strategy<Value = AlgorithmIdentifierOwned> {
    let known = prop::sample::select(&[cocsp::SHA1, cocsp::SHA256, cocsp::SHA384, cocsp::SHA512][..]);
    (prop_oneof![4 => known, 1 => any_oid()], any::<bool>()).prop_map(|(oid, null)| AlgorithmIdentifierOwned {
        oid,
        parameters: null.then(|| Null.into()),
    })
}

fn cert_id() -> impl Strategy<Value = CertId> {
    (
        hash_algorithm(),
        prop::collection::vec(any::<u8>(), 0..=64),
        prop::collection::vec(any::<u8>(), 0..=64),
        prop::collection::vec(any::<u8>(), 1..=20),
    )
        .prop_filter_map("encodable CertID", |(alg, name, key, serial)| {
            Some(CertId {
                hash_algorithm: alg,
                issuer_name_hash: OctetString::new(name).ok()?,
                issuer_key_hash: OctetString::new(key).ok()?,
                serial_number: SerialNumber::new(&serial).ok()?,
            })
        })
}

/// How the client sent its nonce.
#[derive(Debug, Clone)]
enum NonceForm {
    /// RFC 8954: the extension value is an OCTET STRING holding the nonce.
    Wrapped(Vec<u8>),
    /// Some clients put the nonce bytes directly in extnValue.
    Bare(Vec<u8>),
}

impl NonceForm {
    fn extension(&self) -> Extension {
        let extn_value = match self {
            NonceForm::Wrapped(n) => OctetString::new(OctetString::new(n.clone()).unwrap().to_der().unwrap()),
            NonceForm::Bare(n) => OctetString::new(n.clone()),
        }
        .unwrap();
        Extension {
            extn_id: cocsp::NONCE,
            critical: false,
            extn_value,
        }
    }

    /// The nonce parse_request must report.
    fn expected(&self) -> Vec<u8> {
        match self {
            NonceForm::Wrapped(n) => n.clone(),
            NonceForm::Bare(n) => n.clone(),
        }
    }

    /// A bare nonce that happens to be a DER OCTET STRING is read as wrapped.
    fn is_ambiguous(&self) -> bool {
        matches!(self, NonceForm::Bare(n) if OctetString::from_der(n).is_ok())
    }
}

fn nonce_form(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = NonceForm> {
    (prop::collection::vec(any::<u8>(), len), any::<bool>()).prop_map(|(n, wrapped)| {
        if wrapped {
            NonceForm::Wrapped(n)
        } else {
            NonceForm::Bare(n)
        }
    })
}

/// An extension that is not a nonce: ignored unless critical (RFC 6960
/// §4.4: an unrecognised critical extension makes the request malformed).
fn other_extension() -> impl Strategy<Value = Extension> {
    (any_oid(), any::<bool>(), prop::collection::vec(any::<u8>(), 0..32))
        .prop_filter("not the nonce OID", |(oid, _, _)| *oid != cocsp::NONCE)
        .prop_map(|(extn_id, critical, v)| Extension {
            extn_id,
            critical,
            extn_value: OctetString::new(v).unwrap(),
        })
}

#[derive(Debug, Clone)]
struct RequestSpec {
    ids: Vec<CertId>,
    nonce: Option<NonceForm>,
    other: Option<Extension>,
    other_first: bool,
}

impl RequestSpec {
    fn der(&self) -> Vec<u8> {
        let mut exts = Vec::new();
        if let Some(o) = &self.other {
            exts.push(o.clone());
        }
        if let Some(n) = &self.nonce {
            if self.other_first {
                exts.push(n.extension());
            } else {
                exts.insert(0, n.extension());
            }
        }
        OcspRequest {
            tbs_request: TbsRequest {
                version: Version::V1,
                requestor_name: None,
                request_list: self
                    .ids
                    .iter()
                    .map(|id| Request {
                        req_cert: id.clone(),
                        single_request_extensions: None,
                    })
                    .collect(),
                request_extensions: (!exts.is_empty()).then_some(exts),
            },
            optional_signature: None,
        }
        .to_der()
        .unwrap()
    }
}

fn request_spec(
    ids: std::ops::RangeInclusive<usize>,
    nonce_len: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = RequestSpec> {
    (
        prop::collection::vec(cert_id(), ids),
        prop::option::of(nonce_form(nonce_len)),
        prop::option::of(other_extension()),
        any::<bool>(),
    )
        .prop_map(|(ids, nonce, other, other_first)| RequestSpec {
            ids,
            nonce,
            other,
            other_first,
        })
}

fn valid_request() -> impl Strategy<Value = RequestSpec> {
    request_spec(1..=cocsp::MAX_SINGLE_REQUESTS, 1..=cocsp::MAX_NONCE_LEN)
        .prop_filter("unambiguous nonce, no unknown critical extension", |s| {
            !s.nonce.as_ref().is_some_and(NonceForm::is_ambiguous) && !s.other.as_ref().is_some_and(|e| e.critical)
        })
}

/// Whatever `parse_simple` accepts, `parse_request` accepts as the same one question.
fn check_simple(der: &[u8]) -> Result<(), TestCaseError> {
    let Some(q) = cocsp::parse_simple(der) else {
        return Ok(());
    };
    let full = cocsp::parse_request(der);
    prop_assert!(
        full.is_ok(),
        "fast path accepted what parse_request refuses: {:?}",
        full
    );
    let full = full.unwrap();
    prop_assert!(full.nonce.is_none());
    prop_assert_eq!(full.questions.len(), 1);
    let one = &full.questions[0];
    prop_assert_eq!(one.hash, Some(q.hash));
    prop_assert_eq!(one.cert_id.issuer_name_hash.as_bytes(), q.name_hash);
    prop_assert_eq!(one.cert_id.issuer_key_hash.as_bytes(), q.key_hash);
    prop_assert_eq!(one.cert_id.serial_number.as_bytes(), q.serial);
    Ok(())
}

/// What must hold of any request parse_request accepts, whatever its bytes,
/// and of the decision an empty snapshot makes on it.
fn check_accepted(req: &ParsedRequest) -> Result<(), TestCaseError> {
    prop_assert!(!req.questions.is_empty() && req.questions.len() <= cocsp::MAX_SINGLE_REQUESTS);
    if let Some(n) = &req.nonce {
        prop_assert!(!n.is_empty() && n.len() <= cocsp::MAX_NONCE_LEN);
    }
    for q in &req.questions {
        prop_assert_eq!(q.hash, CertIdHash::from_oid(&q.cert_id.hash_algorithm.oid));
        // A CertID we accepted re-encodes and decodes to itself.
        let der = q.cert_id.to_der().unwrap();
        prop_assert_eq!(&CertId::from_der(&der).unwrap(), &q.cert_id);
    }
    let decision = Snapshot::empty().answer_ocsp(req, 0);
    prop_assert!(
        matches!(
            decision,
            OcspDecision::Error(ErrorAnswer::Unauthorized, Outcome::Unauthorized)
        ),
        "empty snapshot answered {:?}",
        decision
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn parse_request_never_panics(bytes in untrusted_bytes()) {
        if let Ok(req) = cocsp::parse_request(&bytes) {
            check_accepted(&req)?;
        }
    }

    #[test]
    fn valid_requests_round_trip(spec in valid_request()) {
        let der = spec.der();
        let req = cocsp::parse_request(&der).unwrap();
        let got: Vec<&CertId> = req.questions.iter().map(|q| &q.cert_id).collect();
        let want: Vec<&CertId> = spec.ids.iter().collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(req.nonce, spec.nonce.as_ref().map(NonceForm::expected));
        for (q, id) in req.questions.iter().zip(&spec.ids) {
            prop_assert_eq!(q.hash, CertIdHash::from_oid(&id.hash_algorithm.oid));
        }
        let req = cocsp::parse_request(&der).unwrap();
        check_accepted(&req)?;
    }

    #[test]
    fn request_bounds_are_enforced(
        spec in request_spec(0..=cocsp::MAX_SINGLE_REQUESTS + 4, 0..=cocsp::MAX_NONCE_LEN + 40)
    ) {
        prop_assume!(!spec.nonce.as_ref().is_some_and(NonceForm::is_ambiguous));
        let got = cocsp::parse_request(&spec.der());
        let nonce_len = spec.nonce.as_ref().map(|n| n.expected().len());
        let bad_nonce = nonce_len.is_some_and(|l| l == 0 || l > cocsp::MAX_NONCE_LEN);
        let critical = spec.other.as_ref().filter(|e| e.critical).map(|e| e.extn_id.to_string());
        // Extensions are checked in the order they were sent.
        let nonce_first = spec.nonce.is_some() && !spec.other_first;
        let want = if spec.ids.is_empty() {
            Err(RequestError::Empty)
        } else if spec.ids.len() > cocsp::MAX_SINGLE_REQUESTS {
            Err(RequestError::TooMany)
        } else if bad_nonce && (nonce_first || critical.is_none()) {
            Err(RequestError::BadNonce)
        } else if let Some(oid) = critical {
            Err(RequestError::UnknownCritical(oid))
        } else if bad_nonce {
            Err(RequestError::BadNonce)
        } else {
            Ok(())
        };
        prop_assert_eq!(got.map(|_| ()), want);
    }

    #[test]
    fn truncated_requests_are_refused(spec in request_spec(1..=3, 1..=32)) {
        let der = spec.der();
        for cut in 0..der.len() {
            prop_assert!(cocsp::parse_request(&der[..cut]).is_err(), "prefix of {} bytes accepted", cut);
        }
    }

    #[test]
    fn bit_flipped_requests_never_panic(
        spec in valid_request(),
        flips in prop::collection::vec((any::<Index>(), 0u8..8), 1..=4),
    ) {
        let der = flip(spec.der(), &flips);
        if let Ok(req) = cocsp::parse_request(&der) {
            check_accepted(&req)?;
        }
    }

    /// The allocation-free reader agrees with the full one wherever it
    /// answers: whatever bytes, an accepted request is exactly one CertID
    /// with a hash we serve, no nonce, and the same fields.
    #[test]
    fn parse_simple_agrees_with_parse_request(
        spec in request_spec(0..=3, 1..=32),
        flips in prop::collection::vec((any::<Index>(), 0u8..8), 0..=2),
    ) {
        let der = flip(spec.der(), &flips);
        check_simple(&der)?;
        for cut in 0..der.len() {
            prop_assert!(cocsp::parse_simple(&der[..cut]).is_none());
        }
    }

    #[test]
    fn parse_simple_agrees_on_untrusted_bytes(bytes in untrusted_bytes()) {
        check_simple(&bytes)?;
    }

    /// Every plain request (one CertID, SHA-1 or SHA-256, no extension)
    /// takes the fast path.
    #[test]
    fn plain_requests_take_the_fast_path(id in cert_id()) {
        prop_assume!(matches!(CertIdHash::from_oid(&id.hash_algorithm.oid), Some(CertIdHash::Sha1 | CertIdHash::Sha256)));
        let spec = RequestSpec { ids: vec![id.clone()], nonce: None, other: None, other_first: false };
        let der = spec.der();
        let q = cocsp::parse_simple(&der);
        prop_assert!(q.is_some());
        let q = q.unwrap();
        prop_assert_eq!(q.serial, id.serial_number.as_bytes());
        prop_assert_eq!(q.key_hash, id.issuer_key_hash.as_bytes());
    }

    #[test]
    fn oversized_requests_are_refused(extra in 1usize..64) {
        let der = vec![0x30; cocsp::MAX_REQUEST_LEN + extra];
        prop_assert_eq!(cocsp::parse_request(&der).unwrap_err(), RequestError::TooLarge);
    }
}

// ---------------------------------------------------------------------------
// GET /ocsp/{base64}
// ---------------------------------------------------------------------------

/// What clients and proxies do to the base64 in a GET path.
#[derive(Debug, Clone, Copy)]
enum Mangling {
    /// RFC 6960 A.1 as written: standard alphabet, padded, no escaping.
    Standard,
    /// URL-encoded: `+` `/` `=` as `%2B` `%2F` `%3D`.
    PercentEncoded,
    /// The same with lowercase hex digits.
    PercentEncodedLower,
    /// Every character percent-encoded.
    PercentEverything,
    /// Padding dropped.
    Unpadded,
    /// `+` decoded as a space by a form decoder.
    PlusAsSpace,
    /// Padding dropped and `+` turned into a space.
    UnpaddedPlusAsSpace,
    /// URL-safe alphabet (`-` `_`), unpadded (RFC 4648 §5 as used in URLs).
    UrlSafe,
    /// URL-safe alphabet with padding.
    UrlSafePadded,
    /// URL-safe alphabet with percent-encoded padding.
    UrlSafePercentPadding,
    /// Only `/` percent-encoded (some proxies normalise path separators).
    SlashOnlyEncoded,
}

const MANGLINGS: &[Mangling] = &[
    Mangling::Standard,
    Mangling::PercentEncoded,
    Mangling::PercentEncodedLower,
    Mangling::PercentEverything,
    Mangling::Unpadded,
    Mangling::PlusAsSpace,
    Mangling::UnpaddedPlusAsSpace,
    Mangling::UrlSafe,
    Mangling::UrlSafePadded,
    Mangling::UrlSafePercentPadding,
    Mangling::SlashOnlyEncoded,
];

fn mangle(der: &[u8], m: Mangling) -> String {
    let std = Base64::encode_string(der);
    match m {
        Mangling::Standard => std,
        Mangling::PercentEncoded => std.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D"),
        Mangling::PercentEncodedLower => std.replace('+', "%2b").replace('/', "%2f").replace('=', "%3d"),
        Mangling::PercentEverything => std.bytes().map(|b| format!("%{b:02X}")).collect(),
        Mangling::Unpadded => Base64Unpadded::encode_string(der),
        Mangling::PlusAsSpace => std.replace('+', " "),
        Mangling::UnpaddedPlusAsSpace => Base64Unpadded::encode_string(der).replace('+', " "),
        Mangling::UrlSafe => Base64UrlUnpadded::encode_string(der),
        Mangling::UrlSafePadded => Base64Url::encode_string(der),
        Mangling::UrlSafePercentPadding => Base64Url::encode_string(der).replace('=', "%3D"),
        Mangling::SlashOnlyEncoded => std.replace('/', "%2F"),
    }
}

/// The two-pass decoder the one-pass `decode_get_path` replaced:
/// percent-decoding, the text cleaned and re-padded, then the `base64`
/// crate's canonical decoding. Kept as the reference.
fn decode_get_path_two_pass(raw: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    if raw.is_empty() || raw.len() > 4096 {
        return None;
    }
    let mut text: Vec<u8> = percent_encoding::percent_decode(raw.as_bytes())
        .filter_map(|c| match c {
            b' ' | b'-' => Some(b'+'),
            b'_' => Some(b'/'),
            b'=' | b'\r' | b'\n' | b'\t' => None,
            c => Some(c),
        })
        .collect();
    if text.len() % 4 == 1 {
        return None;
    }
    while text.len() % 4 != 0 {
        text.push(b'=');
    }
    base64::engine::general_purpose::STANDARD.decode(&text).ok()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn get_path_round_trips(
        bytes in prop::collection::vec(any::<u8>(), 1..=900),
        m in prop::sample::select(MANGLINGS),
    ) {
        let path = mangle(&bytes, m);
        prop_assert!(path.len() <= 4096);
        prop_assert_eq!(decode_get_path(&path), Some(bytes));
    }

    #[test]
    fn get_path_round_trips_up_to_the_limit(len in 2900usize..=3072, fill in any::<u8>()) {
        // 3072 bytes are exactly 4096 base64 characters: the longest path accepted.
        let bytes: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
        prop_assert_eq!(decode_get_path(&mangle(&bytes, Mangling::Standard)), Some(bytes.clone()));
        let too_long = mangle(&bytes, Mangling::PercentEncoded);
        if too_long.len() > 4096 {
            prop_assert_eq!(decode_get_path(&too_long), None);
        }
    }

    #[test]
    fn get_path_then_parse_matches_post(spec in valid_request(), m in prop::sample::select(MANGLINGS)) {
        let der = spec.der();
        let path = mangle(&der, m);
        prop_assume!(path.len() <= 4096);
        let decoded = decode_get_path(&path).unwrap();
        prop_assert_eq!(&decoded, &der);
        let via_get = cocsp::parse_request(&decoded).unwrap();
        let via_post = cocsp::parse_request(&der).unwrap();
        prop_assert_eq!(via_get.nonce, via_post.nonce);
        prop_assert_eq!(via_get.questions.len(), via_post.questions.len());
    }

    /// The one-pass decoder accepts and refuses exactly what the two-pass
    /// one did, with the same bytes, whatever the text.
    #[test]
    fn get_path_one_pass_agrees_with_two_pass(
        raw in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9+/=%_ -]{0,80}",
            "(%[0-9A-Fa-f]{0,2}|[A-Za-z0-9+/= \t\r\n_-]){0,60}",
            "(%[2-7][0-9A-Fa-f]|[A-Za-z0-9]){1,40}",
        ]
    ) {
        prop_assert_eq!(decode_get_path(&raw), decode_get_path_two_pass(&raw));
    }

    #[test]
    fn get_path_one_pass_agrees_on_mangled_requests(
        bytes in prop::collection::vec(any::<u8>(), 1..=200),
        m in prop::sample::select(MANGLINGS),
        flip in any::<Index>(),
        to in any::<char>(),
    ) {
        let path = mangle(&bytes, m);
        prop_assert_eq!(decode_get_path(&path), decode_get_path_two_pass(&path));
        // One character replaced by any other.
        let mut chars: Vec<char> = path.chars().collect();
        let i = flip.index(chars.len());
        chars[i] = to;
        let changed: String = chars.into_iter().collect();
        prop_assert_eq!(decode_get_path(&changed), decode_get_path_two_pass(&changed));
    }

    #[test]
    fn get_path_never_panics(
        raw in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9+/=%_ -]{0,80}",
            "(%[0-9A-Fa-f]{0,2}|[A-Za-z0-9+/= \t\r\n_-]){0,60}",
            "[A-Za-z0-9+/]{4090,4100}",
        ]
    ) {
        let got = decode_get_path(&raw);
        if raw.is_empty() || raw.len() > 4096 {
            prop_assert_eq!(&got, &None);
        }
        if let Some(der) = got {
            // Whatever was accepted parses (or is refused) without panicking.
            if let Ok(req) = cocsp::parse_request(&der) {
                check_accepted(&req)?;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Typed serial numbers
// ---------------------------------------------------------------------------

/// A serial as cloudpki issues them: positive, no sign byte needed
/// (first octet 0x01..=0x7f), 1 to 20 octets.
fn issued_serial() -> impl Strategy<Value = Vec<u8>> {
    (1u8..=0x7f, prop::collection::vec(any::<u8>(), 0..=19)).prop_map(|(first, rest)| {
        let mut s = vec![first];
        s.extend(rest);
        s
    })
}

fn colon_separated(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

/// Minimal big-endian magnitude (leading zero octets stripped).
fn magnitude(hex: &str) -> Vec<u8> {
    let padded = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_owned()
    };
    let bytes: Vec<u8> = (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).unwrap())
        .collect();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

fn check_canonical(s: &str) -> Result<(), TestCaseError> {
    prop_assert!(!s.is_empty() && s.len() % 2 == 0, "odd or empty: {:?}", s);
    prop_assert!(
        s.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "not uppercase hex: {:?}",
        s
    );
    if s.len() >= 4 && s.starts_with("00") {
        prop_assert!(
            u8::from_str_radix(&s[2..4], 16).unwrap() >= 0x80,
            "redundant 00 in {:?}",
            s
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn normalize_serial_is_idempotent_and_canonical(
        input in prop_oneof![
            any::<String>(),
            "[0-9a-fA-F: ]{0,90}",
            "(00|0){0,4}[0-9a-fA-F]{1,40}",
        ]
    ) {
        if let Some(n) = normalize_serial(&input) {
            check_canonical(&n)?;
            prop_assert_eq!(normalize_serial(&n), Some(n.clone()));
            // Same integer as typed: only zero octets (and a sign byte) differ.
            let typed: String = input.chars().filter(|c| c.is_ascii_hexdigit()).collect();
            prop_assert_eq!(magnitude(&n), magnitude(&typed));
        }
    }

    #[test]
    fn normalize_serial_ignores_case_separators_and_sign_byte(serial in issued_serial(), zeros in 0usize..3) {
        let want = Some(hex_upper(&serial));
        let lower = hex_lower(&serial);
        let upper = hex_upper(&serial);
        let forms = [
            lower.clone(),
            upper.clone(),
            format!("00{lower}"),
            format!("00{upper}"),
            format!("{}{lower}", "00".repeat(zeros)),
            colon_separated(&lower),
            colon_separated(&upper),
            format!("00:{}", colon_separated(&upper)),
            colon_separated(&upper).replace(':', " "),
        ];
        for form in forms {
            prop_assert_eq!(normalize_serial(&form), want.clone(), "form {:?}", form);
        }
    }

    #[test]
    fn normalize_serial_case_and_separators_never_matter(serial in prop::collection::vec(any::<u8>(), 1..=20)) {
        // Any octets, including ones that need a sign byte.
        let upper = hex_upper(&serial);
        let want = normalize_serial(&upper);
        prop_assert!(want.is_some());
        prop_assert_eq!(normalize_serial(&hex_lower(&serial)), want.clone());
        prop_assert_eq!(normalize_serial(&colon_separated(&hex_lower(&serial))), want.clone());
        prop_assert_eq!(normalize_serial(&format!("00{upper}")).map(|s| magnitude(&s)), Some(magnitude(&upper)));
    }

    #[test]
    fn normalize_serial_rejects_non_hex(
        hex in "[0-9a-fA-F]{0,20}",
        at in any::<Index>(),
        bad in any::<char>().prop_filter("not hex or a separator", |c| !c.is_ascii_hexdigit() && *c != ':' && *c != ' '),
    ) {
        let mut s = hex.clone();
        let pos = at.index(hex.len() + 1);
        s.insert(pos, bad);
        prop_assert_eq!(normalize_serial(&s), None, "{:?} accepted", s);
    }

    #[test]
    fn normalize_serial_rejects_blank(s in "[: ]{0,10}") {
        prop_assert_eq!(normalize_serial(&s), None);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// A serial whose first octet has the high bit set is typed both ways:
    /// `00E41047` (DER contents, as stored) and `E41047` (as `openssl x509
    /// -serial` prints it). Today they normalize differently; cloudpki never
    /// issues such serials (first octet 0x01..=0x7f), so no lookup is affected.
    #[test]
    fn normalize_serial_sign_byte_is_optional_for_high_bit_serials(
        first in 0x80u8..=0xff,
        rest in prop::collection::vec(any::<u8>(), 0..=18),
    ) {
        let mut serial = vec![first];
        serial.extend(rest);
        let bare = hex_upper(&serial);
        prop_assert_eq!(normalize_serial(&bare), normalize_serial(&format!("00{bare}")));
    }
}

// ---------------------------------------------------------------------------
// PEM / DER / base64 files
// ---------------------------------------------------------------------------

const LABELS: &[&str] = &["CERTIFICATE", "CERTIFICATE REQUEST", "X509 CRL", "PUBLIC KEY"];

fn pem_block() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    (prop::sample::select(LABELS), prop::collection::vec(any::<u8>(), 1..600))
}

/// Text OpenSSL and operators put around blocks ("Bag Attributes", "subject=").
fn chatter() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[A-Za-z0-9 =:,/.]{0,60}\n"]
}

/// Fragments that poke at the hand-written block scanner.
fn pemish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("-----BEGIN ".to_owned()),
        Just("-----END ".to_owned()),
        Just("-----".to_owned()),
        Just("CERTIFICATE".to_owned()),
        Just("X509 CRL".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA".to_owned()),
        Just("AA==".to_owned()),
        Just("=".to_owned()),
        Just(" ".to_owned()),
        Just("é".to_owned()),
        "\\PC{0,6}",
        "[A-Za-z0-9+/=]{0,16}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn pem_round_trips((label, der) in pem_block()) {
        let text = pem::encode(label, &der).unwrap();
        prop_assert_eq!(pem::decode_all(text.as_bytes(), &[label]).unwrap(), vec![der.clone()]);
        prop_assert_eq!(pem::decode_one(text.as_bytes(), &[label]).unwrap(), der.clone());
        // Files saved on Windows.
        let crlf = text.replace('\n', "\r\n");
        prop_assert_eq!(pem::decode_all(crlf.as_bytes(), &[label]).unwrap(), vec![der]);
    }

    #[test]
    fn pem_bundles_keep_wanted_blocks_in_order(
        blocks in prop::collection::vec((pem_block(), chatter()), 1..6),
        key in prop::collection::vec(any::<u8>(), 1..200),
        key_at in any::<Index>(),
        tail in chatter(),
    ) {
        let mut parts: Vec<(&'static str, Vec<u8>, String)> =
            blocks.into_iter().map(|((l, d), c)| (l, d, c)).collect();
        // A private key in the bundle is skipped, never returned.
        let at = key_at.index(parts.len() + 1);
        parts.insert(at, ("PRIVATE KEY", key, String::new()));
        let mut text = String::new();
        for (label, der, before) in &parts {
            text.push_str(before);
            text.push_str(&pem::encode(label, der).unwrap());
        }
        text.push_str(&tail);
        for wanted in [&["CERTIFICATE"][..], &["CERTIFICATE", "X509 CRL"][..]] {
            let want: Vec<Vec<u8>> = parts
                .iter()
                .filter(|(l, _, _)| wanted.contains(l))
                .map(|(_, d, _)| d.clone())
                .collect();
            let got = pem::decode_all(text.as_bytes(), wanted);
            if want.is_empty() {
                prop_assert!(matches!(got, Err(X509Error::Pem(_))), "got {:?}", got);
            } else {
                prop_assert_eq!(got.unwrap(), want);
            }
        }
    }

    #[test]
    fn bare_base64_round_trips(der in prop::collection::vec(any::<u8>(), 1..900), wrap in prop_oneof![Just(0usize), Just(64), Just(76)], crlf in any::<bool>()) {
        let b64 = Base64::encode_string(&der);
        let text = if wrap == 0 {
            b64
        } else {
            let nl = if crlf { "\r\n" } else { "\n" };
            b64.as_bytes().chunks(wrap).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(nl) + nl
        };
        prop_assert_eq!(pem::decode_all(text.as_bytes(), &["CERTIFICATE"]).unwrap(), vec![der]);
    }

    #[test]
    fn binary_der_passes_through(body in prop::collection::vec(any::<u8>(), 0..600)) {
        // 30 82 ..: a long-form SEQUENCE header, never valid UTF-8.
        let mut der = vec![0x30, 0x82];
        der.extend(body);
        prop_assert_eq!(pem::decode_all(&der, &["CERTIFICATE"]).unwrap(), vec![der]);
    }

    #[test]
    fn pem_decode_never_panics(
        input in prop_oneof![
            untrusted_bytes(),
            pemish().prop_map(String::into_bytes),
            any::<String>().prop_map(String::into_bytes),
        ],
    ) {
        for labels in [&["CERTIFICATE"][..], &["CERTIFICATE", "X509 CRL"][..], &[][..], &["", "CERTIFICATE"][..]] {
            let _ = pem::decode_all(&input, labels);
            let _ = pem::decode_one(&input, labels);
        }
    }
}

// ---------------------------------------------------------------------------
// PKCS#10 CSRs from devices
// ---------------------------------------------------------------------------

static EKUS: [ObjectIdentifier; 5] = [
    oids::KP_CLIENT_AUTH,
    oids::KP_SERVER_AUTH,
    oids::KP_EMAIL,
    oids::KP_CODE_SIGNING,
    oids::KP_SMARTCARD_LOGON,
];

fn eku_subset() -> impl Strategy<Value = Vec<ObjectIdentifier>> {
    prop::collection::vec(any::<bool>(), EKUS.len())
        .prop_map(|mask| EKUS.iter().zip(mask).filter(|(_, m)| *m).map(|(o, _)| *o).collect())
}

fn common_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 .,+=-]{0,40}"
}

fn build_csr(key: &SoftwareKey, cn: &str, ekus: &[ObjectIdentifier]) -> (x509_cert::name::Name, Vec<u8>) {
    let name = SubjectParts {
        common_name: cn.to_owned(),
        ..Default::default()
    }
    .to_name()
    .unwrap();
    let der = csr::build_ca_request(&name, key, ekus).unwrap();
    (name, der)
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn csrs_round_trip(which in any::<u8>(), cn in common_name(), ekus in eku_subset()) {
        let key = key(which);
        let (name, der) = build_csr(key, &cn, &ekus);
        let v = csr::verify(&der, 112).unwrap();
        prop_assert_eq!(&v.subject, &name);
        prop_assert_eq!(&v.public_key, key.public_key());
        prop_assert_eq!(v.requested_ekus, ekus);
        prop_assert_eq!(names::common_name(&v.subject), Some(cn));
        // P-256 and RSA-2048 are below 192 bits of security; P-384 is 192.
        let strength = if which % 3 == 1 { 192 } else if which % 3 == 0 { 128 } else { 112 };
        prop_assert!(matches!(csr::verify(&der, strength + 1), Err(X509Error::WeakKey(_))));
    }

    #[test]
    fn tampered_csrs_never_panic(
        which in any::<u8>(),
        cn in common_name(),
        flips in prop::collection::vec((any::<Index>(), 0u8..8), 1..=3),
        cut in any::<Index>(),
    ) {
        let (_, der) = build_csr(key(which), &cn, &[oids::KP_CLIENT_AUTH]);
        let flipped = flip(der.clone(), &flips);
        let _ = csr::verify(&flipped, 112);
        let _ = csr::verify(&flipped, 0);
        let cut = cut.index(der.len());
        prop_assert!(csr::verify(&der[..cut], 0).is_err());
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn csr_verify_never_panics(bytes in untrusted_bytes(), min in prop_oneof![Just(0u16), Just(112u16), any::<u16>()]) {
        let _ = csr::verify(&bytes, min);
    }
}

// ---------------------------------------------------------------------------
// Externally signed CA certificates uploaded by operators
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct CaSpec {
    serial: Vec<u8>,
    cn: String,
    not_before: i64,
    lifetime: i64,
    path_len: Option<u8>,
    ekus: Vec<ObjectIdentifier>,
}

fn ca_spec() -> impl Strategy<Value = CaSpec> {
    (
        issued_serial(),
        common_name(),
        0i64..4_000_000_000,
        1i64..(60 * 365 * 86_400),
        prop::option::of(0u8..4),
        eku_subset(),
    )
        .prop_map(|(serial, cn, not_before, lifetime, path_len, ekus)| CaSpec {
            serial,
            cn,
            not_before,
            lifetime,
            path_len,
            ekus,
        })
}

fn issue_ca(spec: &CaSpec, subject_key: &SoftwareKey, signer: &SoftwareKey) -> Vec<u8> {
    let name = SubjectParts {
        common_name: spec.cn.clone(),
        ..Default::default()
    }
    .to_name()
    .unwrap();
    let req = CertRequest {
        serial: spec.serial.clone(),
        subject: name.clone(),
        issuer: name,
        issuer_key_id: cert::key_identifier(signer.public_key()),
        public_key: subject_key.public_key().clone(),
        not_before: OffsetDateTime::from_unix_timestamp(spec.not_before).unwrap(),
        not_after: OffsetDateTime::from_unix_timestamp(spec.not_before + spec.lifetime).unwrap(),
        role: CertRole::Ca {
            path_len: spec.path_len,
        },
        key_usage: cert::ca_key_usage(),
        ekus: spec.ekus.clone(),
        pointers: Some(RevocationPointers {
            crl_url: "http://pki.example/crls/ca_v1/current.crl".into(),
            delta_crl_url: None,
            ca_issuers_url: "http://pki.example/cacerts/ca_v1/cert.cer".into(),
            ocsp_url: Some("http://pki.example/ocsp".into()),
        }),
        subject_alt_name: None,
    };
    cert::issue(&req, signer).unwrap()
}

/// Everything the upload path reads from a certificate; must never panic.
fn inspect(c: &ParsedCert) {
    let _ = c.basic_constraints();
    let _ = c.key_usage();
    let _ = c.ekus();
    let _ = c.subject_key_id();
    let _ = c.ca_issuers_uri();
    let _ = c.not_before();
    let _ = c.not_after();
    let _ = c.is_ca();
    let _ = c.is_self_issued();
    let _ = normalize_serial(&c.serial_hex());
    let _ = names::graph_subject_name(&c.tbs().subject);
    let _ = names::graph_issuer_name(&c.tbs().issuer);
    let _ = names::common_name(&c.tbs().subject);
    let _ = cloudpki::x509::thumbprint(&c.der);
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn issued_ca_certs_parse_and_verify(spec in ca_spec(), signer_ix in any::<u8>(), other_ix in 1u8..3) {
        let signer = key(signer_ix);
        let other = key(signer_ix % 3 + other_ix);
        let der = issue_ca(&spec, signer, signer);
        let c = ParsedCert::from_der(&der).unwrap();
        prop_assert!(c.verify_signed_by(signer.public_key()).is_ok());
        prop_assert!(c.verify_signed_by(other.public_key()).is_err());
        prop_assert!(c.is_ca().unwrap());
        prop_assert!(c.is_self_issued());
        prop_assert_eq!(c.basic_constraints().unwrap().unwrap().path_len_constraint, spec.path_len);
        prop_assert_eq!(c.ekus().unwrap(), spec.ekus.clone());
        prop_assert_eq!(c.not_before().unwrap().unix_timestamp(), spec.not_before);
        prop_assert_eq!(c.not_after().unwrap().unix_timestamp(), spec.not_before + spec.lifetime);
        // The stored serial form is a fixed point of the typed-serial parser.
        let hex = c.serial_hex();
        prop_assert_eq!(normalize_serial(&hex), Some(hex.clone()));
        prop_assert_eq!(hex, hex_upper(&spec.serial));
        prop_assert_eq!(names::common_name(&c.tbs().subject), Some(spec.cn.clone()));
        inspect(&c);
    }

    #[test]
    fn tampered_ca_certs_never_panic(
        spec in ca_spec(),
        signer_ix in any::<u8>(),
        flips in prop::collection::vec((any::<Index>(), 0u8..8), 1..=3),
        cut in any::<Index>(),
    ) {
        let signer = key(signer_ix);
        let der = issue_ca(&spec, signer, signer);
        let flipped = flip(der.clone(), &flips);
        if let Ok(c) = ParsedCert::from_der(&flipped) {
            let _ = c.verify_signed_by(signer.public_key());
            let _ = c.verify_signed_by(&c.tbs().subject_public_key_info);
            inspect(&c);
        }
        let cut = cut.index(der.len());
        prop_assert!(ParsedCert::from_der(&der[..cut]).is_err());
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn cert_parsing_never_panics(bytes in untrusted_bytes()) {
        if let Ok(c) = ParsedCert::from_der(&bytes) {
            let _ = c.verify_signed_by(EC_KEY.public_key());
            let _ = c.verify_signed_by(RSA_KEY.public_key());
            let _ = c.verify_signed_by(&c.tbs().subject_public_key_info);
            inspect(&c);
        }
    }
}

// ---------------------------------------------------------------------------
// SCEP pkiMessages
// ---------------------------------------------------------------------------

mod scep_messages {
    use super::*;
    use cloudpki::x509::scep::{self, device, ClientRequest, ContentCipher, FailInfo, MessageType, RaDecryptor};

    struct Parties {
        ra: SoftwareKey,
        ra_decryptor: RaDecryptor,
        ra_cert: x509_cert::Certificate,
        device_cert: x509_cert::Certificate,
        message: Vec<u8>,
        csr: Vec<u8>,
    }

    static PARTIES: LazyLock<Parties> = LazyLock::new(|| {
        let (ra, pkcs8) = SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256).unwrap();
        let ra_cert = device::self_signed(&ra, "Property RA").unwrap();
        let device_cert = device::self_signed(&RSA_KEY, "device").unwrap();
        let csr = device::csr(&RSA_KEY, "device", Some("CHALLENGE")).unwrap();
        let message = scep::client_request(&ClientRequest {
            message_type: MessageType::PkcsReq,
            inner: &csr,
            signer: &RSA_KEY,
            signer_cert: &device_cert,
            ra_cert: &ra_cert,
            transaction_id: "PROPERTY",
            sender_nonce: [3; 16],
            cipher: ContentCipher::Aes256,
        })
        .unwrap();
        Parties {
            ra_decryptor: RaDecryptor::from_pkcs8(&pkcs8).unwrap(),
            ra,
            ra_cert,
            device_cert,
            message,
            csr,
        }
    });

    proptest! {
        #![proptest_config(config(256))]

        /// Flipped bits in a real request: either it no longer parses, or
        /// whatever still parses is refused unless the flip missed every
        /// byte that matters, and a CertRep can always be built for it.
        #[test]
        fn a_damaged_request_is_refused_or_still_the_same_request(
            flips in prop::collection::vec((any::<Index>(), 0u8..8), 1..=3),
        ) {
            let p = &*PARTIES;
            let damaged = flip(p.message.clone(), &flips);
            if let Ok(req) = scep::parse(&damaged) {
                if let Ok(content) = &req.verified {
                    // The signature held: the content is what the device signed.
                    if let Ok((inner, _, _)) = scep::open(content, &[(&p.ra_cert, &p.ra_decryptor)]) {
                        prop_assert_eq!(inner.as_slice(), p.csr.as_slice());
                    }
                }
                let refusal = scep::Refusal::new(FailInfo::BadMessageCheck, "damaged");
                let rep = scep::cert_rep(&p.ra, &p.ra_cert, &req.header, scep::Reply::Failure(&refusal), OffsetDateTime::now_utc());
                if let Ok(rep) = rep {
                    prop_assert_eq!(scep::reply_status(&rep).unwrap(), ("2".to_owned(), Some("1".to_owned())));
                }
            }
            let _ = &p.device_cert;
        }

        #[test]
        fn scep_parsing_never_panics(bytes in untrusted_bytes()) {
            let p = &*PARTIES;
            if let Ok(req) = scep::parse(&bytes) {
                if let Ok(content) = &req.verified {
                    let _ = scep::open(content, &[(&p.ra_cert, &p.ra_decryptor)]);
                }
            }
            let _ = scep::open(&bytes, &[(&p.ra_cert, &p.ra_decryptor)]);
            let _ = scep::issuer_and_serial(&bytes);
        }
    }
}
