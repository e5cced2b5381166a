//! SCEP messages (RFC 8894): reading a device's pkiMessage and writing the
//! CA's CertRep. Sans-IO: bytes in, bytes out; the CMS structures are the
//! RustCrypto `cms` types, the cryptography aws-lc-rs (RSA PKCS#1 v1.5 key
//! transport, AES-CBC).
//!
//! A pkiMessage is a SignedData (signed by the device: its self-signed
//! certificate for a first request, its current certificate for a renewal)
//! whose content is an EnvelopedData encrypted to the RA certificate; inside
//! is the PKCS#10 request (PKCSReq, RenewalReq), an IssuerAndSubject
//! (CertPoll) or an IssuerAndSerialNumber (GetCert, GetCRL).

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{EncryptedContentInfo, EnvelopedData, RecipientInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier as Oid, OctetString, PrintableString, SetOfVec};
use der::{Any, AnyRef, Decode, Encode, Reader, SliceReader, Tag, Tagged};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::keys::{verify_signature, Signer, SoftwareKey};
use super::{oids, HashAlgorithm, X509Error};

pub const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
pub const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
pub const ID_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
const SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
/// PKCS#9 challengePassword, the SCEP challenge inside the CSR.
pub const CHALLENGE_PASSWORD: Oid = Oid::new_unwrap("1.2.840.113549.1.9.7");
const MESSAGE_TYPE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.2");
const PKI_STATUS: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.3");
const FAIL_INFO: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.4");
const SENDER_NONCE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.5");
const RECIPIENT_NONCE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.6");
const TRANSACTION_ID: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.7");
/// RFC 8894 §3.2.1.4.5: failInfoText, a human-readable reason.
const FAIL_INFO_TEXT: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.24.1");
const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
const DES_EDE3_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.7");

/// Largest pkiMessage we read: a CSR with a 4096-bit key, enveloped and
/// signed with a certificate, is under 8 KiB.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// Most elements any constructed value of a message may hold (certificates,
/// attributes, names...): real ones hold a handful.
const MAX_ELEMENTS: usize = 64;

/// SCEP messageType values (RFC 8894 §3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    CertRep,
    RenewalReq,
    PkcsReq,
    CertPoll,
    GetCert,
    GetCrl,
}

impl MessageType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "3" => MessageType::CertRep,
            "17" => MessageType::RenewalReq,
            "19" => MessageType::PkcsReq,
            "20" => MessageType::CertPoll,
            "21" => MessageType::GetCert,
            "22" => MessageType::GetCrl,
            _ => return None,
        })
    }
}

/// failInfo values (RFC 8894 §3.2.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    BadAlg,
    BadMessageCheck,
    BadRequest,
    BadTime,
    BadCertId,
}

impl FailInfo {
    fn code(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "0",
            FailInfo::BadMessageCheck => "1",
            FailInfo::BadRequest => "2",
            FailInfo::BadTime => "3",
            FailInfo::BadCertId => "4",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "badAlg",
            FailInfo::BadMessageCheck => "badMessageCheck",
            FailInfo::BadRequest => "badRequest",
            FailInfo::BadTime => "badTime",
            FailInfo::BadCertId => "badCertId",
        }
    }
}

/// A refusal that can be answered with a CertRep: why, and for the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub fail_info: FailInfo,
    pub text: String,
}

impl Refusal {
    pub fn new(fail_info: FailInfo, text: impl Into<String>) -> Self {
        Refusal {
            fail_info,
            text: text.into(),
        }
    }
}

/// The content-encryption algorithm of a request; the reply uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCipher {
    Aes128,
    Aes192,
    Aes256,
}

impl ContentCipher {
    fn of(oid: Oid) -> Option<Self> {
        match oid {
            o if o == AES128_CBC => Some(ContentCipher::Aes128),
            o if o == AES192_CBC => Some(ContentCipher::Aes192),
            o if o == AES256_CBC => Some(ContentCipher::Aes256),
            _ => None,
        }
    }

    fn oid(self) -> Oid {
        match self {
            ContentCipher::Aes128 => AES128_CBC,
            ContentCipher::Aes192 => AES192_CBC,
            ContentCipher::Aes256 => AES256_CBC,
        }
    }

    fn algorithm(self) -> &'static aws_lc_rs::cipher::Algorithm {
        match self {
            ContentCipher::Aes128 => &aws_lc_rs::cipher::AES_128,
            ContentCipher::Aes192 => &aws_lc_rs::cipher::AES_192,
            ContentCipher::Aes256 => &aws_lc_rs::cipher::AES_256,
        }
    }

    fn key_len(self) -> usize {
        match self {
            ContentCipher::Aes128 => 16,
            ContentCipher::Aes192 => 24,
            ContentCipher::Aes256 => 32,
        }
    }
}

/// What every pkiMessage says about itself in its signed attributes, and
/// who signed it. Known once the outer SignedData parsed, so even a request
/// whose signature or content is bad gets a CertRep naming its transaction.
#[derive(Debug, Clone)]
pub struct Header {
    pub message_type: MessageType,
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
    /// The certificate the device signed with (self-signed, or its current
    /// one), as sent.
    pub signer_cert_der: Vec<u8>,
    /// What the reply needs of it: its issuer and serial (the envelope's
    /// recipient) and its key.
    pub signer: SignerIdentity,
}

/// A device certificate's issuer, serial and key. Read leniently: devices'
/// throwaway self-signed certificates break X.509 rules that do not matter
/// here (certmonger's are version 1 with a negative 33-byte serial).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerIdentity {
    pub issuer: x509_cert::name::Name,
    pub serial: der::asn1::Int,
    pub public_key: spki::SubjectPublicKeyInfoOwned,
}

/// IssuerAndSerialNumber with any INTEGER as the serial (see [`SignerIdentity`]).
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct AnyIssuerAndSerial {
    issuer: x509_cert::name::Name,
    serial: der::asn1::Int,
}

/// The parts of a certificate a SCEP server needs, decoded without
/// x509-cert's strictness on version and serial number.
#[derive(Clone, Debug, der::Sequence)]
struct LenientCert {
    tbs: LenientTbs,
    algorithm: Any,
    signature: Any,
}

#[derive(Clone, Debug, der::Sequence)]
struct LenientTbs {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<Any>,
    serial: der::asn1::Int,
    signature: Any,
    issuer: x509_cert::name::Name,
    validity: Any,
    subject: x509_cert::name::Name,
    public_key: spki::SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    issuer_unique_id: Option<der::asn1::BitString>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    subject_unique_id: Option<der::asn1::BitString>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Any>,
}

/// SignedData with the certificates and the signer's identifier kept raw.
#[derive(Clone, Debug, der::Sequence)]
struct LenientSignedData {
    version: Any,
    digest_algorithms: Any,
    encap_content_info: EncapsulatedContentInfo,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    certificates: Option<SetOfVec<Any>>,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    crls: Option<SetOfVec<Any>>,
    signer_infos: SetOfVec<LenientSignerInfo>,
}

#[derive(Clone, Debug, Eq, PartialEq, der::Sequence, der::ValueOrd)]
struct LenientSignerInfo {
    version: Any,
    sid: Any,
    digest_alg: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    signed_attrs: Option<SetOfVec<Attribute>>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: OctetString,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    unsigned_attrs: Option<SetOfVec<Attribute>>,
}

/// A parsed request: its header, and either its still-encrypted content
/// (signature and digest verified) or why it cannot be used.
#[derive(Debug)]
pub struct Request {
    pub header: Header,
    pub verified: Result<Vec<u8>, Refusal>,
}

/// Reads a pkiMessage. `Err` means not even a header could be read (not a
/// SignedData, no transactionID, ...): that gets an HTTP 400, since a
/// CertRep must name a transaction.
pub fn parse(der: &[u8]) -> Result<Request, X509Error> {
    if der.len() > MAX_MESSAGE_LEN {
        return Err(X509Error::Malformed("pkiMessage larger than 64 KiB"));
    }
    super::check_der_shape(der, MAX_ELEMENTS)?;
    let ci = ContentInfo::from_der(der)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(X509Error::Malformed("pkiMessage is not a SignedData"));
    }
    let sd: LenientSignedData = ci.content.decode_as()?;
    let mut signers = sd.signer_infos.iter();
    let (Some(si), None) = (signers.next(), signers.next()) else {
        return Err(X509Error::Malformed("pkiMessage must have exactly one signer"));
    };
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or(X509Error::Malformed("pkiMessage without signed attributes"))?;
    let message_type = printable(attrs, MESSAGE_TYPE)?
        .and_then(|s| MessageType::parse(&s))
        .ok_or(X509Error::Malformed("missing or unknown messageType"))?;
    // Echoed back as a PrintableString: one that cannot be (a UTF8String
    // with other characters) would leave a request without an answer.
    let transaction_id = printable(attrs, TRANSACTION_ID)?
        .filter(|t| !t.is_empty() && t.len() <= 128 && PrintableString::new(t).is_ok())
        .ok_or(X509Error::Malformed("missing transactionID, or not a PrintableString"))?;
    let sender_nonce = octets(attrs, SENDER_NONCE)?
        .filter(|n| n.len() == 16)
        .ok_or(X509Error::Malformed("missing senderNonce (16 bytes)"))?;
    let (signer, signer_cert_der) = signer_certificate(&sd, &si.sid)?;
    let header = Header {
        message_type,
        transaction_id,
        sender_nonce,
        signer_cert_der,
        signer,
    };
    let verified = verify(der, &sd, si, &header);
    Ok(Request { header, verified })
}

fn signer_certificate(sd: &LenientSignedData, sid: &Any) -> Result<(SignerIdentity, Vec<u8>), X509Error> {
    let certs = sd
        .certificates
        .as_ref()
        .ok_or(X509Error::Malformed("pkiMessage without the signer's certificate"))?;
    // The signer: issuerAndSerialNumber, or [0] subjectKeyIdentifier.
    let by_serial = if sid.tag() == Tag::Sequence {
        Some(sid.decode_as::<AnyIssuerAndSerial>()?)
    } else {
        None
    };
    for any in certs.iter() {
        let Ok(c) = any.decode_as::<LenientCert>() else {
            continue;
        };
        let t = c.tbs;
        let matches = match &by_serial {
            Some(ias) => ias.issuer == t.issuer && ias.serial == t.serial,
            None => super::cert::key_identifier(&t.public_key) == sid.value(),
        };
        if matches {
            let identity = SignerIdentity {
                issuer: t.issuer,
                serial: t.serial,
                public_key: t.public_key,
            };
            return Ok((identity, any.to_der()?));
        }
    }
    Err(X509Error::Malformed(
        "the signer's certificate is not in the pkiMessage",
    ))
}

fn digest_of(oid: Oid) -> Result<(HashAlgorithm, &'static aws_lc_rs::digest::Algorithm), Refusal> {
    Ok(match oid {
        o if o == SHA256 => (HashAlgorithm::Sha256, &aws_lc_rs::digest::SHA256),
        o if o == SHA384 => (HashAlgorithm::Sha384, &aws_lc_rs::digest::SHA384),
        o if o == SHA512 => (HashAlgorithm::Sha512, &aws_lc_rs::digest::SHA512),
        o if o == SHA1 => {
            return Err(Refusal::new(
                FailInfo::BadAlg,
                "SHA-1 is not accepted; GetCACaps offers SHA-256, SHA-384 and SHA-512",
            ))
        }
        _ => return Err(Refusal::new(FailInfo::BadAlg, format!("digest algorithm {oid}"))),
    })
}

/// Checks the signature over the signed attributes (as the device encoded
/// them) and the messageDigest over the content; returns the content (the
/// DER of the EnvelopedData).
fn verify(der: &[u8], sd: &LenientSignedData, si: &LenientSignerInfo, header: &Header) -> Result<Vec<u8>, Refusal> {
    let check = || Refusal::new(FailInfo::BadMessageCheck, "malformed signed content");
    if sd.encap_content_info.econtent_type != ID_DATA {
        return Err(Refusal::new(FailInfo::BadRequest, "the signed content is not id-data"));
    }
    let content = match &sd.encap_content_info.econtent {
        Some(any) => OctetString::from_der(&any.to_der().map_err(|_| check())?)
            .map_err(|_| check())?
            .into_bytes(),
        None => return Err(Refusal::new(FailInfo::BadRequest, "pkiMessage without content")),
    };
    let (hash, digest_alg) = digest_of(si.digest_alg.oid)?;
    let attrs = si.signed_attrs.as_ref().ok_or_else(check)?;
    let digest = octets(attrs, MESSAGE_DIGEST)
        .map_err(|_| check())?
        .ok_or_else(|| Refusal::new(FailInfo::BadMessageCheck, "missing messageDigest"))?;
    if digest != aws_lc_rs::digest::digest(digest_alg, &content).as_ref() {
        return Err(Refusal::new(
            FailInfo::BadMessageCheck,
            "messageDigest does not match the content",
        ));
    }
    let signed = raw_signed_attributes(der).map_err(|_| check())?;
    let spki = &header.signer.public_key;
    let algorithm = signature_algorithm(si.signature_algorithm.oid, spki.algorithm.oid, hash)?;
    verify_signature(spki, &algorithm, &signed, si.signature.as_bytes())
        .map_err(|_| Refusal::new(FailInfo::BadMessageCheck, "the signature does not verify"))?;
    Ok(content)
}

/// The signature algorithm as `verify_signature` names it: CMS signers often
/// say only "rsaEncryption" and give the hash as the digest algorithm.
fn signature_algorithm(sig: Oid, key: Oid, hash: HashAlgorithm) -> Result<AlgorithmIdentifierOwned, Refusal> {
    use HashAlgorithm::*;
    let oid = if sig == oids::RSA_ENCRYPTION && key == oids::RSA_ENCRYPTION {
        match hash {
            Sha256 => oids::SHA256_WITH_RSA,
            Sha384 => oids::SHA384_WITH_RSA,
            Sha512 => oids::SHA512_WITH_RSA,
        }
    } else if [
        oids::SHA256_WITH_RSA,
        oids::SHA384_WITH_RSA,
        oids::SHA512_WITH_RSA,
        oids::ECDSA_SHA256,
        oids::ECDSA_SHA384,
        oids::ECDSA_SHA512,
    ]
    .contains(&sig)
    {
        sig
    } else {
        return Err(Refusal::new(FailInfo::BadAlg, format!("signature algorithm {sig}")));
    };
    Ok(AlgorithmIdentifierOwned { oid, parameters: None })
}

/// The signed attributes exactly as the device encoded them, re-tagged as the
/// SET OF that the signature covers (RFC 5652 §5.4). Decoding sorts a SET OF,
/// so re-encoding the parsed attributes need not give the signed bytes.
fn raw_signed_attributes(der: &[u8]) -> der::Result<Vec<u8>> {
    let ci = AnyRef::from_der(der)?;
    let mut r = SliceReader::new(ci.value())?;
    let _content_type: AnyRef<'_> = r.decode()?;
    let explicit: AnyRef<'_> = r.decode()?;
    let sd = AnyRef::from_der(explicit.value())?;
    let mut r = SliceReader::new(sd.value())?;
    let mut signer_infos = None;
    while !r.is_finished() {
        let item: AnyRef<'_> = r.decode()?;
        signer_infos = Some(item);
    }
    // SignerInfos is the SignedData's last field.
    let set = signer_infos.ok_or_else(|| Tag::Set.value_error())?;
    let mut r = SliceReader::new(set.value())?;
    let si: AnyRef<'_> = r.decode()?;
    let mut r = SliceReader::new(si.value())?;
    let _version: AnyRef<'_> = r.decode()?;
    let _sid: AnyRef<'_> = r.decode()?;
    let _digest: AnyRef<'_> = r.decode()?;
    let attrs: AnyRef<'_> = r.decode()?;
    if attrs.tag()
        != (Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber::N0,
        })
    {
        return Err(Tag::Set.value_error());
    }
    AnyRef::new(Tag::Set, attrs.value())?.to_der()
}

fn attr_values(attrs: &SetOfVec<Attribute>, oid: Oid) -> Option<&Any> {
    attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.iter().next())
}

fn printable(attrs: &SetOfVec<Attribute>, oid: Oid) -> Result<Option<String>, X509Error> {
    let Some(v) = attr_values(attrs, oid) else {
        return Ok(None);
    };
    // Some clients send these as UTF8String; accept both.
    let s = match v.tag() {
        Tag::PrintableString => v.decode_as::<PrintableString>()?.to_string(),
        Tag::Utf8String => v.decode_as::<String>()?,
        _ => return Err(X509Error::Malformed("SCEP attribute of the wrong type")),
    };
    Ok(Some(s))
}

fn octets(attrs: &SetOfVec<Attribute>, oid: Oid) -> Result<Option<Vec<u8>>, X509Error> {
    attr_values(attrs, oid)
        .map(|v| Ok(v.decode_as::<OctetString>()?.into_bytes()))
        .transpose()
}

/// The RA's decryption key (RSA: SCEP's key transport).
pub struct RaDecryptor(aws_lc_rs::rsa::PrivateDecryptingKey);

impl std::fmt::Debug for RaDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaDecryptor(..)")
    }
}

impl RaDecryptor {
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, X509Error> {
        aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map(RaDecryptor)
            .map_err(|_| X509Error::Crypto("RA decryption key"))
    }
}

/// Opens the EnvelopedData of a verified request with the key of the RA it
/// was encrypted to (`ras`: the CA's RAs, current first; a device may still
/// hold the certificate of the one before a rotation); returns the inner
/// DER, the cipher to answer with, and which RA opened it (it signs the reply).
pub fn open(
    enveloped: &[u8],
    ras: &[(&Certificate, &RaDecryptor)],
) -> Result<(Zeroizing<Vec<u8>>, ContentCipher, usize), Refusal> {
    let bad = || Refusal::new(FailInfo::BadMessageCheck, "the enveloped content cannot be read");
    super::check_der_shape(enveloped, MAX_ELEMENTS).map_err(|_| bad())?;
    let ci = ContentInfo::from_der(enveloped).map_err(|_| bad())?;
    if ci.content_type != ID_ENVELOPED_DATA {
        return Err(Refusal::new(
            FailInfo::BadRequest,
            "the content is not an EnvelopedData",
        ));
    }
    let ed: EnvelopedData = ci.content.decode_as().map_err(|_| bad())?;
    let eci = &ed.encrypted_content;
    let alg = eci.content_enc_alg.oid;
    let cipher = ContentCipher::of(alg).ok_or_else(|| {
        let what = if alg == DES_EDE3_CBC {
            "3DES"
        } else {
            "this content cipher"
        };
        Refusal::new(FailInfo::BadAlg, format!("{what} is not offered; GetCACaps offers AES"))
    })?;
    let iv: [u8; 16] = eci
        .content_enc_alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<OctetString>().ok())
        .and_then(|o| o.as_bytes().try_into().ok())
        .ok_or_else(|| Refusal::new(FailInfo::BadMessageCheck, "missing or bad AES IV"))?;
    let rsa: Vec<&cms::enveloped_data::KeyTransRecipientInfo> = ed
        .recip_infos
        .0
        .iter()
        .filter_map(|ri| match ri {
            RecipientInfo::Ktri(k) if k.key_enc_alg.oid == oids::RSA_ENCRYPTION => Some(k),
            _ => None,
        })
        .collect();
    // The recipient our RA certificate names; else the current RA.
    let named = rsa.iter().find_map(|k| match &k.rid {
        cms::enveloped_data::RecipientIdentifier::IssuerAndSerialNumber(ias) => ras
            .iter()
            .position(|(c, _)| {
                c.tbs_certificate.issuer == ias.issuer && c.tbs_certificate.serial_number == ias.serial_number
            })
            .map(|i| (*k, i)),
        _ => None,
    });
    let (ktri, which) = match (named, rsa.first()) {
        (Some(found), _) => found,
        (None, Some(k)) => (*k, 0),
        (None, None) => return Err(Refusal::new(FailInfo::BadAlg, "no RSA key-transport recipient")),
    };
    let ra = ras.get(which).map(|(_, d)| *d).ok_or_else(bad)?;
    // RFC 3218 §2.3.2: on a bad PKCS#1 block go on with a random key, so the
    // answer (a failure to decrypt the content) does not tell why.
    let key = {
        use aws_lc_rs::rand::SecureRandom;
        let mut fallback = Zeroizing::new(vec![0u8; cipher.key_len()]);
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut fallback)
            .map_err(|_| bad())?;
        let d = aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey::new(ra.0.clone()).map_err(|_| bad())?;
        let mut out = Zeroizing::new(vec![0u8; d.min_output_size()]);
        match d.decrypt(ktri.enc_key.as_bytes(), &mut out) {
            Ok(k) if k.len() == cipher.key_len() => Zeroizing::new(k.to_vec()),
            _ => fallback,
        }
    };
    let mut data = eci
        .encrypted_content
        .as_ref()
        .ok_or_else(|| Refusal::new(FailInfo::BadRequest, "no encrypted content"))?
        .as_bytes()
        .to_vec();
    let unbound = aws_lc_rs::cipher::UnboundCipherKey::new(cipher.algorithm(), &key).map_err(|_| bad())?;
    let dk = aws_lc_rs::cipher::PaddedBlockDecryptingKey::cbc_pkcs7(unbound).map_err(|_| bad())?;
    let plain = dk
        .decrypt(
            &mut data,
            aws_lc_rs::cipher::DecryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from(iv)),
        )
        .map_err(|_| bad())?;
    Ok((Zeroizing::new(plain.to_vec()), cipher, which))
}

/// A fingerprint of an envelope's encrypted content-encryption key (the
/// first RSA recipient's): a device makes a fresh key for every message, so
/// one seen again in a different message is someone probing the envelope
/// (a padding oracle on the CBC layer needs exactly that).
pub fn content_key_id(enveloped: &[u8]) -> Option<[u8; 32]> {
    super::check_der_shape(enveloped, MAX_ELEMENTS).ok()?;
    let ci = ContentInfo::from_der(enveloped).ok()?;
    let ed: EnvelopedData = ci.content.decode_as().ok()?;
    ed.recip_infos.0.iter().find_map(|ri| match ri {
        RecipientInfo::Ktri(k) => {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, k.enc_key.as_bytes());
            let mut id = [0u8; 32];
            id.copy_from_slice(d.as_ref());
            Some(id)
        }
        _ => None,
    })
}

/// CertPoll's content (RFC 8894 §3.3.3).
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub struct IssuerAndSubject {
    pub issuer: x509_cert::name::Name,
    pub subject: x509_cert::name::Name,
}

/// GetCert / GetCRL content.
pub fn issuer_and_serial(der: &[u8]) -> Result<IssuerAndSerialNumber, X509Error> {
    super::check_der_shape(der, MAX_ELEMENTS)?;
    Ok(IssuerAndSerialNumber::from_der(der)?)
}

/// What a CertRep says.
#[derive(Debug)]
pub enum Reply<'a> {
    /// The issued certificate first, then its chain (or a CRL for GetCRL).
    Success {
        certs: &'a [Vec<u8>],
        cipher: ContentCipher,
    },
    SuccessCrl {
        crl: &'a [u8],
        cipher: ContentCipher,
    },
    Pending,
    Failure(&'a Refusal),
}

/// A degenerate certs-only SignedData (GetCACert with an RA, and the
/// content of a successful CertRep).
pub fn certs_only(certs: &[Vec<u8>], crl: Option<&[u8]>) -> Result<Vec<u8>, X509Error> {
    let mut set = Vec::with_capacity(certs.len());
    for c in certs {
        set.push(cms::cert::CertificateChoices::Certificate(Certificate::from_der(c)?));
    }
    let crls = match crl {
        Some(crl) => Some(cms::revocation::RevocationInfoChoices(SetOfVec::try_from(vec![
            cms::revocation::RevocationInfoChoice::Crl(x509_cert::crl::CertificateList::from_der(crl)?),
        ])?)),
        None => None,
    };
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: (!set.is_empty())
            .then(|| SetOfVec::try_from(set).map(CertificateSet))
            .transpose()?,
        crls,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    Ok(ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd)?,
    }
    .to_der()?)
}

fn random<const N: usize>() -> Result<[u8; N], X509Error> {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; N];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| X509Error::Crypto("random"))?;
    Ok(b)
}

#[derive(Clone, Debug, der::Sequence)]
struct AnyKeyTrans {
    version: u8,
    rid: AnyIssuerAndSerial,
    key_enc_alg: AlgorithmIdentifierOwned,
    enc_key: OctetString,
}

#[derive(Clone, Debug, der::Sequence)]
struct AnyEnvelopedData {
    version: u8,
    recipient_infos: SetOfVec<Any>,
    encrypted_content: EncryptedContentInfo,
}

/// Envelopes `content` to the requester's RSA certificate.
fn envelope(content: &[u8], to: &SignerIdentity, cipher: ContentCipher) -> Result<Vec<u8>, X509Error> {
    let spki = &to.public_key;
    if spki.algorithm.oid != oids::RSA_ENCRYPTION {
        return Err(X509Error::UnsupportedAlgorithm(
            "SCEP replies are encrypted to the device's key, which must be RSA".into(),
        ));
    }
    let key = Zeroizing::new(random::<32>()?[..cipher.key_len()].to_vec());
    let iv = random::<16>()?;
    let pk = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki.to_der()?)
        .map_err(|_| X509Error::Crypto("device public key"))?;
    let enc = aws_lc_rs::rsa::Pkcs1PublicEncryptingKey::new(pk).map_err(|_| X509Error::Crypto("device public key"))?;
    let mut wrapped = vec![0u8; enc.ciphertext_size()];
    let wrapped = enc
        .encrypt(&key, &mut wrapped)
        .map_err(|_| X509Error::Crypto("key transport"))?
        .to_vec();
    let unbound = aws_lc_rs::cipher::UnboundCipherKey::new(cipher.algorithm(), &key)
        .map_err(|_| X509Error::Crypto("content key"))?;
    let ek = aws_lc_rs::cipher::PaddedBlockEncryptingKey::cbc_pkcs7(unbound)
        .map_err(|_| X509Error::Crypto("content key"))?;
    let mut data = content.to_vec();
    ek.less_safe_encrypt(
        &mut data,
        aws_lc_rs::cipher::EncryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from(iv)),
    )
    .map_err(|_| X509Error::Crypto("content encryption"))?;
    // The recipient is named by the device certificate's own issuer and
    // serial, whatever their form: RustCrypto's IssuerAndSerialNumber would
    // refuse certmonger's serials, so this KeyTransRecipientInfo is ours.
    let ktri = AnyKeyTrans {
        version: 0,
        rid: AnyIssuerAndSerial {
            issuer: to.issuer.clone(),
            serial: to.serial.clone(),
        },
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: oids::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        enc_key: OctetString::new(wrapped)?,
    };
    let ed = AnyEnvelopedData {
        version: 0,
        recipient_infos: SetOfVec::try_from(vec![Any::encode_from(&ktri)?])?,
        encrypted_content: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: cipher.oid(),
                parameters: Some(Any::encode_from(&OctetString::new(iv.to_vec())?)?),
            },
            encrypted_content: Some(OctetString::new(data)?),
        },
    };
    Ok(ContentInfo {
        content_type: ID_ENVELOPED_DATA,
        content: Any::encode_from(&ed)?,
    }
    .to_der()?)
}

fn attribute(oid: Oid, value: Any) -> Result<Attribute, X509Error> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

fn printable_any(s: &str) -> Result<Any, X509Error> {
    Ok(Any::encode_from(&PrintableString::new(s)?)?)
}

/// Builds the CertRep answering `header`, signed by the RA.
pub fn cert_rep(
    ra: &SoftwareKey,
    ra_cert: &Certificate,
    header: &Header,
    reply: Reply<'_>,
    now: time::OffsetDateTime,
) -> Result<Vec<u8>, X509Error> {
    let (status, content) = match reply {
        Reply::Success { certs, cipher } => {
            let inner = certs_only(certs, None)?;
            ("0", Some(envelope(&inner, &header.signer, cipher)?))
        }
        Reply::SuccessCrl { crl, cipher } => {
            let inner = certs_only(&[], Some(crl))?;
            ("0", Some(envelope(&inner, &header.signer, cipher)?))
        }
        Reply::Pending => ("3", None),
        Reply::Failure(_) => ("2", None),
    };
    let mut attrs = vec![
        attribute(
            SIGNING_TIME,
            Any::encode_from(&x509_cert::time::Time::UtcTime(der::asn1::UtcTime::from_unix_duration(
                std::time::Duration::from_secs(u64::try_from(now.unix_timestamp()).unwrap_or(0)),
            )?))?,
        )?,
        attribute(MESSAGE_TYPE, printable_any("3")?)?,
        attribute(PKI_STATUS, printable_any(status)?)?,
        attribute(TRANSACTION_ID, printable_any(&header.transaction_id)?)?,
        attribute(
            RECIPIENT_NONCE,
            Any::encode_from(&OctetString::new(header.sender_nonce.clone())?)?,
        )?,
        attribute(
            SENDER_NONCE,
            Any::encode_from(&OctetString::new(random::<16>()?.to_vec())?)?,
        )?,
    ];
    if let Reply::Failure(refusal) = reply {
        attrs.push(attribute(FAIL_INFO, printable_any(refusal.fail_info.code())?)?);
        let text: String = refusal.text.chars().take(200).collect();
        attrs.push(attribute(FAIL_INFO_TEXT, Any::encode_from(&text)?)?);
    }
    signed_data(ra, ra_cert, attrs, content)
}

/// A SignedData over `content` (absent: none) with `attrs` plus
/// contentType and messageDigest, signed by `signer` with its certificate.
fn signed_data(
    signer: &SoftwareKey,
    signer_cert: &Certificate,
    mut attrs: Vec<Attribute>,
    content: Option<Vec<u8>>,
) -> Result<Vec<u8>, X509Error> {
    let hash = signer.hash();
    let digest_alg_oid = match hash {
        HashAlgorithm::Sha256 => SHA256,
        HashAlgorithm::Sha384 => SHA384,
        HashAlgorithm::Sha512 => SHA512,
    };
    let digest = aws_lc_rs::digest::digest(hash.digest_alg(), content.as_deref().unwrap_or(&[]));
    attrs.push(attribute(CONTENT_TYPE, Any::encode_from(&ID_DATA)?)?);
    attrs.push(attribute(
        MESSAGE_DIGEST,
        Any::encode_from(&OctetString::new(digest.as_ref().to_vec())?)?,
    )?);
    let signed_attrs = SetOfVec::try_from(attrs)?;
    let signature = signer.sign(&signed_attrs.to_der()?)?;
    let si = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: signer_cert.tbs_certificate.issuer.clone(),
            serial_number: signer_cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: AlgorithmIdentifierOwned {
            oid: digest_alg_oid,
            parameters: None,
        },
        signed_attrs: Some(signed_attrs),
        // rsaEncryption with the digest algorithm beside it, as OpenSSL and
        // most SCEP servers write it: every client reads this form.
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: oids::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![AlgorithmIdentifierOwned {
            oid: digest_alg_oid,
            parameters: None,
        }])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: content
                .map(|c| Ok::<_, X509Error>(Any::encode_from(&OctetString::new(c)?)?))
                .transpose()?,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(vec![
            cms::cert::CertificateChoices::Certificate(signer_cert.clone()),
        ])?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![si])?),
    };
    Ok(ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd)?,
    }
    .to_der()?)
}

/// A device's request, for tests, benchmarks and fuzzing seeds: what
/// strongSwan's `pki --scep` sends.
#[derive(Debug)]
pub struct ClientRequest<'a> {
    pub message_type: MessageType,
    /// The CSR (PKCSReq, RenewalReq) or IssuerAndSerialNumber (GetCert).
    pub inner: &'a [u8],
    /// The device's RSA key and its (self-signed or current) certificate.
    pub signer: &'a SoftwareKey,
    pub signer_cert: &'a Certificate,
    pub ra_cert: &'a Certificate,
    pub transaction_id: &'a str,
    pub sender_nonce: [u8; 16],
    pub cipher: ContentCipher,
}

/// Builds the pkiMessage a device sends.
pub fn client_request(r: &ClientRequest<'_>) -> Result<Vec<u8>, X509Error> {
    let ra = &r.ra_cert.tbs_certificate;
    let to = SignerIdentity {
        issuer: ra.issuer.clone(),
        serial: der::asn1::Int::new(ra.serial_number.as_bytes())?,
        public_key: ra.subject_public_key_info.clone(),
    };
    let enveloped = envelope(r.inner, &to, r.cipher)?;
    let code = match r.message_type {
        MessageType::CertRep => "3",
        MessageType::RenewalReq => "17",
        MessageType::PkcsReq => "19",
        MessageType::CertPoll => "20",
        MessageType::GetCert => "21",
        MessageType::GetCrl => "22",
    };
    let attrs = vec![
        attribute(MESSAGE_TYPE, printable_any(code)?)?,
        attribute(TRANSACTION_ID, printable_any(r.transaction_id)?)?,
        attribute(
            SENDER_NONCE,
            Any::encode_from(&OctetString::new(r.sender_nonce.to_vec())?)?,
        )?,
    ];
    signed_data(r.signer, r.signer_cert, attrs, Some(enveloped))
}

/// What a CertRep says, as a device reads it (tests).
pub fn reply_status(der: &[u8]) -> Result<(String, Option<String>), X509Error> {
    let ci = ContentInfo::from_der(der)?;
    let sd: SignedData = ci.content.decode_as()?;
    let si = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or(X509Error::Malformed("no signer"))?;
    let attrs = si.signed_attrs.as_ref().ok_or(X509Error::Malformed("no attributes"))?;
    let status = printable(attrs, PKI_STATUS)?.ok_or(X509Error::Malformed("no pkiStatus"))?;
    Ok((status, printable(attrs, FAIL_INFO)?))
}

/// What a device makes before it asks (a throwaway self-signed certificate,
/// a CSR carrying the challenge): for tests, benchmarks and fuzzing seeds.
pub mod device {
    use der::asn1::SetOfVec;
    use der::{Any, Decode, Encode};
    use x509_cert::attr::Attribute;
    use x509_cert::request::{CertReq, CertReqInfo, Version};
    use x509_cert::Certificate;

    use crate::x509::cert::{self, CertRequest, CertRole};
    use crate::x509::names::SubjectParts;
    use crate::x509::{Signer, SoftwareKey, X509Error};

    /// A self-signed certificate of `key` named `cn`, valid for a day.
    pub fn self_signed(key: &SoftwareKey, cn: &str) -> Result<Certificate, X509Error> {
        let name = SubjectParts {
            common_name: cn.to_owned(),
            ..Default::default()
        }
        .to_name()?;
        let now = time::OffsetDateTime::now_utc();
        let der = cert::issue(
            &CertRequest {
                serial: cert::random_serial()?,
                subject: name.clone(),
                issuer: name,
                issuer_key_id: cert::key_identifier(key.public_key()),
                public_key: key.public_key().clone(),
                not_before: now - time::Duration::minutes(5),
                not_after: now + time::Duration::days(1),
                role: CertRole::EndEntity,
                key_usage: cert::leaf_key_usage(key.public_key()),
                ekus: vec![],
                pointers: None,
                subject_alt_name: None,
            },
            key,
        )?;
        Ok(Certificate::from_der(&der)?)
    }

    /// A PKCS#10 request of `key` for `cn` with `challenge` as its
    /// challengePassword (a PrintableString, as strongSwan writes it).
    pub fn csr(key: &SoftwareKey, cn: &str, challenge: Option<&str>) -> Result<Vec<u8>, X509Error> {
        let mut attrs = Vec::new();
        if let Some(c) = challenge {
            attrs.push(Attribute {
                oid: super::CHALLENGE_PASSWORD,
                values: SetOfVec::try_from(vec![Any::encode_from(&der::asn1::PrintableString::new(c)?)?])?,
            });
        }
        let info = CertReqInfo {
            version: Version::V1,
            subject: SubjectParts {
                common_name: cn.to_owned(),
                ..Default::default()
            }
            .to_name()?,
            public_key: key.public_key().clone(),
            attributes: SetOfVec::try_from(attrs)?,
        };
        let signature = key.sign(&info.to_der()?)?;
        Ok(CertReq {
            info,
            algorithm: key.signature_algorithm().clone(),
            signature: der::asn1::BitString::from_bytes(&signature)?,
        }
        .to_der()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::{csr, KeyAlgorithm};

    struct Fixture {
        ra_key: SoftwareKey,
        ra_pkcs8: Zeroizing<Vec<u8>>,
        ra_cert: Certificate,
        device_key: SoftwareKey,
        device_cert: Certificate,
    }

    fn fixture() -> Fixture {
        let (ra_key, ra_pkcs8) = SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256).unwrap();
        let ra_cert = device::self_signed(&ra_key, "Test RA").unwrap();
        let (device_key, _) = SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256).unwrap();
        let device_cert = device::self_signed(&device_key, "device-1").unwrap();
        Fixture {
            ra_key,
            ra_pkcs8,
            ra_cert,
            device_key,
            device_cert,
        }
    }

    fn request(f: &Fixture, inner: &[u8], cipher: ContentCipher) -> Vec<u8> {
        client_request(&ClientRequest {
            message_type: MessageType::PkcsReq,
            inner,
            signer: &f.device_key,
            signer_cert: &f.device_cert,
            ra_cert: &f.ra_cert,
            transaction_id: "TX1",
            sender_nonce: [7; 16],
            cipher,
        })
        .unwrap()
    }

    #[test]
    fn a_request_round_trips_through_parse_open_and_cert_rep() {
        let f = fixture();
        let csr_der = device::csr(&f.device_key, "device-1", Some("SECRET")).unwrap();
        for cipher in [ContentCipher::Aes128, ContentCipher::Aes192, ContentCipher::Aes256] {
            let req = parse(&request(&f, &csr_der, cipher)).unwrap();
            assert_eq!(req.header.message_type, MessageType::PkcsReq);
            assert_eq!(req.header.transaction_id, "TX1");
            assert_eq!(req.header.sender_nonce, [7; 16]);
            assert_eq!(
                req.header.signer.public_key,
                f.device_cert.tbs_certificate.subject_public_key_info
            );
            let ra = RaDecryptor::from_pkcs8(&f.ra_pkcs8).unwrap();
            let (inner, got_cipher, which) = open(req.verified.as_ref().unwrap(), &[(&f.ra_cert, &ra)]).unwrap();
            assert_eq!(which, 0);
            assert_eq!(got_cipher, cipher);
            assert_eq!(inner.as_slice(), csr_der.as_slice());
            let v = csr::verify(&inner, 112).unwrap();
            assert_eq!(v.challenge_password.unwrap().0.as_str(), "SECRET");

            let issued = vec![f.device_cert.to_der().unwrap()];
            let rep = cert_rep(
                &f.ra_key,
                &f.ra_cert,
                &req.header,
                Reply::Success { certs: &issued, cipher },
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
            assert_eq!(reply_status(&rep).unwrap(), ("0".to_owned(), None));
        }
    }

    #[test]
    fn failures_name_their_fail_info() {
        let f = fixture();
        let req = parse(&request(&f, b"x", ContentCipher::Aes128)).unwrap();
        let refusal = Refusal::new(FailInfo::BadTime, "expired");
        let rep = cert_rep(
            &f.ra_key,
            &f.ra_cert,
            &req.header,
            Reply::Failure(&refusal),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        assert_eq!(reply_status(&rep).unwrap(), ("2".to_owned(), Some("3".to_owned())));
    }

    #[test]
    fn a_tampered_signature_or_content_is_bad_message_check() {
        let f = fixture();
        let good = request(&f, b"inner", ContentCipher::Aes128);
        // The signature is the last bytes of the message.
        let mut bad_sig = good.clone();
        let n = bad_sig.len();
        bad_sig[n - 5] ^= 1;
        let r = parse(&bad_sig).unwrap();
        assert_eq!(r.verified.unwrap_err().fail_info, FailInfo::BadMessageCheck);
        // A byte of the enveloped content: the digest no longer matches.
        let mut bad_content = good.clone();
        let at = good.windows(3).position(|w| w == b"\x06\x09\x60").unwrap() + 40;
        bad_content[at] ^= 1;
        // (or it no longer parses at all)
        if let Ok(r) = parse(&bad_content) {
            assert!(r.verified.is_err());
        }
    }

    #[test]
    fn another_ra_key_cannot_open_the_request() {
        let f = fixture();
        let req = parse(&request(&f, b"inner", ContentCipher::Aes128)).unwrap();
        let (_, other) = SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256).unwrap();
        let other = RaDecryptor::from_pkcs8(&other).unwrap();
        let refusal = open(req.verified.as_ref().unwrap(), &[(&f.ra_cert, &other)]).unwrap_err();
        assert_eq!(refusal.fail_info, FailInfo::BadMessageCheck);
    }

    #[test]
    fn the_ra_a_request_names_opens_it_after_a_rotation() {
        let f = fixture();
        let req = parse(&request(&f, b"inner", ContentCipher::Aes128)).unwrap();
        let (new_key, new_pkcs8) = SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256).unwrap();
        let new_cert = device::self_signed(&new_key, "Test RA 2").unwrap();
        let (new, old) = (
            RaDecryptor::from_pkcs8(&new_pkcs8).unwrap(),
            RaDecryptor::from_pkcs8(&f.ra_pkcs8).unwrap(),
        );
        // Current first, the one the device encrypted to second.
        let (inner, _, which) = open(req.verified.as_ref().unwrap(), &[(&new_cert, &new), (&f.ra_cert, &old)]).unwrap();
        assert_eq!((inner.as_slice(), which), (&b"inner"[..], 1));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x30\x00",
            b"\x30\x03\x02\x01\x00",
            &[0x30, 0x82, 0xff, 0xff],
        ] {
            assert!(parse(bytes).is_err());
        }
        assert!(parse(&vec![0u8; MAX_MESSAGE_LEN + 1]).is_err());
    }
}
