//! OCSP (RFC 6960, RFC 5019): request parsing and response signing, sans IO.
//!
//! Responses are built from x509-ocsp's types; the four unsigned error
//! answers are constant bytes made once.

use std::sync::OnceLock;

use der::asn1::{GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::certificate::Certificate;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, ResponderId, ResponseData,
    RevokedInfo, SingleResponse, Version,
};

use super::keys::Signer;
use super::{RevocationReason, X509Error};

pub const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
pub const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
/// RFC 9654 / RFC 8954 nonce extension.
pub const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// RFC 9654 §2.1: nonces of 1 to 128 octets.
pub const MAX_NONCE_LEN: usize = 128;
/// Largest request body accepted; real requests are ~100 bytes.
pub const MAX_REQUEST_LEN: usize = 16 * 1024;
/// At most this many CertIDs per request: bounds signing work per request.
pub const MAX_SINGLE_REQUESTS: usize = 16;

/// The CertID hash algorithms we answer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertIdHash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl CertIdHash {
    pub const ALL: [CertIdHash; 4] = [
        CertIdHash::Sha1,
        CertIdHash::Sha256,
        CertIdHash::Sha384,
        CertIdHash::Sha512,
    ];

    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Some(match *oid {
            o if o == SHA1 => CertIdHash::Sha1,
            o if o == SHA256 => CertIdHash::Sha256,
            o if o == SHA384 => CertIdHash::Sha384,
            o if o == SHA512 => CertIdHash::Sha512,
            _ => return None,
        })
    }

    pub fn oid(self) -> ObjectIdentifier {
        match self {
            CertIdHash::Sha1 => SHA1,
            CertIdHash::Sha256 => SHA256,
            CertIdHash::Sha384 => SHA384,
            CertIdHash::Sha512 => SHA512,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use aws_lc_rs::digest;
        let alg = match self {
            CertIdHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            CertIdHash::Sha256 => &digest::SHA256,
            CertIdHash::Sha384 => &digest::SHA384,
            CertIdHash::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }

    /// The AlgorithmIdentifier as OpenSSL writes it (NULL parameters).
    pub fn algorithm(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters: Some(Null.into()),
        }
    }
}

/// An issuer's CertID hashes for one algorithm (RFC 6960 §4.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerHashes {
    pub hash: CertIdHash,
    pub name_hash: Vec<u8>,
    pub key_hash: Vec<u8>,
}

impl IssuerHashes {
    /// issuerNameHash over the DER of the issuer's subject; issuerKeyHash over
    /// the subjectPublicKey BIT STRING's contents.
    pub fn of(issuer: &Certificate, hash: CertIdHash) -> Result<Self, X509Error> {
        let name = issuer.tbs_certificate.subject.to_der()?;
        let key = issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        Ok(IssuerHashes {
            hash,
            name_hash: hash.digest(&name),
            key_hash: hash.digest(key),
        })
    }

    pub fn cert_id(&self, serial: &[u8]) -> Result<CertId, X509Error> {
        Ok(CertId {
            hash_algorithm: self.hash.algorithm(),
            issuer_name_hash: OctetString::new(self.name_hash.clone())?,
            issuer_key_hash: OctetString::new(self.key_hash.clone())?,
            serial_number: SerialNumber::new(serial)?,
        })
    }
}

/// What a certificate's status is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    /// Revocation time and reason.
    Revoked {
        at: OffsetDateTime,
        reason: RevocationReason,
    },
    Unknown,
}

impl Status {
    /// The one conversion from stored revocation facts (unix seconds and
    /// reason, as the store keeps them) to an OCSP status.
    pub fn from_revocation(revoked_at: Option<i64>, reason: Option<RevocationReason>) -> Result<Status, X509Error> {
        Ok(match revoked_at {
            Some(at) => Status::Revoked {
                at: OffsetDateTime::from_unix_timestamp(at).map_err(|e| X509Error::Time(e.to_string()))?,
                reason: reason.unwrap_or(RevocationReason::Unspecified),
            },
            None => Status::Good,
        })
    }
}

/// One SingleResponse to sign.
#[derive(Debug, Clone)]
pub struct SingleAnswer {
    pub cert_id: CertId,
    pub status: Status,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
}

fn gtime(t: OffsetDateTime) -> Result<OcspGeneralizedTime, X509Error> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| X509Error::Time("before 1970".into()))?;
    Ok(OcspGeneralizedTime(GeneralizedTime::from_unix_duration(
        std::time::Duration::from_secs(secs),
    )?))
}

/// Who signs, and the certificate to include when it is a delegated responder.
pub struct ResponderKey<'a> {
    pub signer: &'a dyn Signer,
    /// The delegated OCSP signing certificate (None when the CA key signs).
    pub delegated_cert: Option<&'a Certificate>,
}

/// Builds and signs a successful OCSP response; returns the OCSPResponse DER.
pub fn sign_response(
    key: &ResponderKey<'_>,
    answers: &[SingleAnswer],
    nonce: Option<&[u8]>,
    produced_at: OffsetDateTime,
) -> Result<Vec<u8>, X509Error> {
    let responses = answers
        .iter()
        .map(|a| {
            let cert_status = match a.status {
                Status::Good => CertStatus::good(),
                Status::Unknown => CertStatus::unknown(),
                Status::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                    revocation_time: gtime(at)?,
                    revocation_reason: reason.crl_reason(),
                }),
            };
            Ok(SingleResponse {
                cert_id: a.cert_id.clone(),
                cert_status,
                this_update: gtime(a.this_update)?,
                next_update: Some(gtime(a.next_update)?),
                single_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, X509Error>>()?;
    let response_extensions = match nonce {
        None => None,
        Some(n) => Some(vec![Extension {
            extn_id: NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(n)?.to_der()?)?,
        }]),
    };
    // ResponderID by key hash (RFC 6960 §4.2.2.3: SHA-1 of the key bits).
    let key_hash = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        key.signer.public_key().subject_public_key.raw_bytes(),
    );
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(key_hash.as_ref())?),
        produced_at: gtime(produced_at)?,
        responses,
        response_extensions,
    };
    let signature = key.signer.sign(&tbs.to_der()?)?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: key.signer.signature_algorithm().clone(),
        signature: der::asn1::BitString::from_bytes(&signature)?,
        certs: key.delegated_cert.map(|c| vec![c.clone()]),
    };
    Ok(OcspResponse::successful(basic)?.to_der()?)
}

/// The unsigned error answers (RFC 6960 §4.2.1), encoded once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAnswer {
    MalformedRequest,
    InternalError,
    TryLater,
    Unauthorized,
}

impl ErrorAnswer {
    pub fn der(self) -> &'static [u8] {
        static CACHE: OnceLock<[Vec<u8>; 4]> = OnceLock::new();
        let all = CACHE.get_or_init(|| {
            // Encoding a two-field SEQUENCE of an ENUMERATED cannot fail.
            let enc = |r: OcspResponse| r.to_der().unwrap_or_default();
            [
                enc(OcspResponse::malformed_request()),
                enc(OcspResponse::internal_error()),
                enc(OcspResponse::try_later()),
                enc(OcspResponse::unauthorized()),
            ]
        });
        &all[self as usize]
    }
}

/// One CertID asked about.
#[derive(Debug, Clone)]
pub struct Question {
    pub cert_id: CertId,
    /// None when the hash algorithm is not one we support.
    pub hash: Option<CertIdHash>,
}

/// A parsed, bounded OCSP request.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub questions: Vec<Question>,
    pub nonce: Option<Vec<u8>>,
}

/// Why a request is malformed (answered `malformedRequest`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request too large")]
    TooLarge,
    #[error("not a DER OCSPRequest: {0}")]
    Der(String),
    #[error("request lists no certificate")]
    Empty,
    #[error("request lists more than {MAX_SINGLE_REQUESTS} certificates")]
    TooMany,
    #[error("nonce must be 1 to {MAX_NONCE_LEN} octets")]
    BadNonce,
    #[error("more than one nonce extension")]
    DuplicateNonce,
    /// RFC 6960 §4.4 / RFC 5280 §4.2: a critical extension we do not
    /// understand must not be ignored.
    #[error("unrecognised critical extension {0}")]
    UnknownCritical(String),
}

/// Parses an OCSPRequest. Never panics, whatever the bytes.
pub fn parse_request(der: &[u8]) -> Result<ParsedRequest, RequestError> {
    if der.len() > MAX_REQUEST_LEN {
        return Err(RequestError::TooLarge);
    }
    let req = OcspRequest::from_der(der).map_err(|e| RequestError::Der(e.to_string()))?;
    let list = req.tbs_request.request_list;
    if list.is_empty() {
        return Err(RequestError::Empty);
    }
    if list.len() > MAX_SINGLE_REQUESTS {
        return Err(RequestError::TooMany);
    }
    let mut nonce = None;
    for ext in req.tbs_request.request_extensions.iter().flatten() {
        if ext.extn_id == NONCE {
            if nonce.is_some() {
                return Err(RequestError::DuplicateNonce);
            }
            // The extension value is an OCTET STRING holding the nonce; RFC 8954
            // clients wrap it once more, some send it bare: accept both.
            let raw = ext.extn_value.as_bytes();
            let value = OctetString::from_der(raw)
                .map(|o| o.as_bytes().to_vec())
                .unwrap_or_else(|_| raw.to_vec());
            if value.is_empty() || value.len() > MAX_NONCE_LEN {
                return Err(RequestError::BadNonce);
            }
            nonce = Some(value);
        } else if ext.critical {
            return Err(RequestError::UnknownCritical(ext.extn_id.to_string()));
        }
    }
    // No per-certificate extension is understood (RFC 6960 defines only
    // the service locator, which a responder may ignore unless critical).
    for single in &list {
        if let Some(ext) = single.single_request_extensions.iter().flatten().find(|e| e.critical) {
            return Err(RequestError::UnknownCritical(ext.extn_id.to_string()));
        }
    }
    let questions = list
        .into_iter()
        .map(|r| Question {
            hash: CertIdHash::from_oid(&r.req_cert.hash_algorithm.oid),
            cert_id: r.req_cert,
        })
        .collect();
    Ok(ParsedRequest { questions, nonce })
}

/// The one CertID of the common request, borrowed from the request's
/// bytes: what nearly every relying party sends (one CertID, no nonce, no
/// extension, no requestor name, no signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimpleQuestion<'a> {
    pub hash: CertIdHash,
    pub name_hash: &'a [u8],
    pub key_hash: &'a [u8],
    /// The serialNumber INTEGER's content octets, as `SerialNumber::as_bytes`.
    pub serial: &'a [u8],
}

/// Reads the common request without allocating; None for anything else
/// (the caller then uses [`parse_request`]). Whatever it accepts,
/// [`parse_request`] accepts with the same single question (a property
/// test holds it to that).
///
/// Hand-read rather than through `der`'s reader: the layout is fixed, and
/// checking six tags and lengths in place costs a tenth of the generic
/// reader's nested closures on every request. It is stricter than DER
/// needs (short or minimal one- and two-octet lengths only, the four hash
/// OIDs byte for byte, a serial of at most 21 octets): anything else falls
/// to the full parser, never to a different answer.
pub fn parse_simple(der: &[u8]) -> Option<SimpleQuestion<'_>> {
    if der.len() > MAX_REQUEST_LEN {
        return None;
    }
    // OCSPRequest { TBSRequest { requestList { Request { CertID } } } }, each
    // the whole of its parent: a version, a requestor name, a second
    // request, extensions or a signature leave bytes over and refuse it.
    let request = whole(der, SEQUENCE)?;
    let tbs = whole(request, SEQUENCE)?;
    let list = whole(tbs, SEQUENCE)?;
    let one = whole(list, SEQUENCE)?;
    let cert_id = whole(one, SEQUENCE)?;
    let (alg, rest) = tlv(cert_id, SEQUENCE)?;
    let (oid, params) = tlv(alg, OBJECT_IDENTIFIER)?;
    if !(params.is_empty() || params == [NULL, 0]) {
        return None;
    }
    let hash = CertIdHash::ALL.into_iter().find(|h| h.oid().as_bytes() == oid)?;
    let (name_hash, rest) = tlv(rest, OCTET_STRING)?;
    let (key_hash, rest) = tlv(rest, OCTET_STRING)?;
    let serial = whole(rest, INTEGER)?;
    // A DER INTEGER: not empty, and no ninth bit repeated in a leading octet.
    match serial {
        [] => return None,
        [0x00, b, ..] if b & 0x80 == 0 => return None,
        [0xff, b, ..] if b & 0x80 != 0 => return None,
        _ if serial.len() > 21 => return None,
        _ => {}
    }
    Some(SimpleQuestion {
        hash,
        name_hash,
        key_hash,
        serial,
    })
}

const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OBJECT_IDENTIFIER: u8 = 0x06;
const SEQUENCE: u8 = 0x30;

/// The content of the one `tag` TLV that is all of `input`.
fn whole(input: &[u8], tag: u8) -> Option<&[u8]> {
    match tlv(input, tag)? {
        (content, []) => Some(content),
        _ => None,
    }
}

/// The content of the `tag` TLV at the front of `input`, and what follows
/// it. Definite lengths in their shortest form, up to 65,535.
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => match rest.split_first()? {
            (&l, rest) if l >= 0x80 => (usize::from(l), rest),
            _ => return None,
        },
        0x82 => match rest.split_first_chunk::<2>()? {
            (&l, rest) if u16::from_be_bytes(l) >= 0x100 => (usize::from(u16::from_be_bytes(l)), rest),
            _ => return None,
        },
        _ => return None,
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_rfc6960() {
        assert_eq!(ErrorAnswer::MalformedRequest.der(), &[0x30, 0x03, 0x0a, 0x01, 0x01]);
        assert_eq!(ErrorAnswer::InternalError.der(), &[0x30, 0x03, 0x0a, 0x01, 0x02]);
        assert_eq!(ErrorAnswer::TryLater.der(), &[0x30, 0x03, 0x0a, 0x01, 0x03]);
        assert_eq!(ErrorAnswer::Unauthorized.der(), &[0x30, 0x03, 0x0a, 0x01, 0x06]);
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        for input in [&b""[..], b"\x30\x00", b"\x30\x03\x30\x01\x00", &[0x30; 64], &[0xff; 3]] {
            assert!(parse_request(input).is_err());
        }
        assert_eq!(
            parse_request(&vec![0x30; MAX_REQUEST_LEN + 1]).unwrap_err(),
            RequestError::TooLarge
        );
    }
}
