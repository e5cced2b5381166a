//! CRLs (RFC 5280 §5), built incrementally.
//!
//! Revoked entries are encoded once, when the revocation happens, and kept
//! as bytes ([`CrlEntries`]); publishing a CRL then costs one pass over those
//! bytes for the signature, never a re-encoding of every entry.

use der::asn1::{AnyRef, BitString, Ia5String, OctetString, Uint};
use der::{Encode, Tag};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::certificate::Version;
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::crl::dp::{DistributionPoint, IssuingDistributionPoint};

use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, BaseCrlNumber, CrlNumber, FreshestCrl};
use x509_cert::ext::{AsExtension, Extension, Extensions};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use super::cert::x509_time;
use super::keys::Signer;
use super::{RevocationReason, X509Error};

/// RFC 5280 §5.2.5 id-ce-issuingDistributionPoint.
pub const ID_CE_ISSUING_DISTRIBUTION_POINT: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.28");

/// The revokedCertificates list as encoded entries.
#[derive(Debug, Clone, Default)]
pub struct CrlEntries {
    buf: Vec<u8>,
    count: usize,
}

impl CrlEntries {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one revoked certificate.
    pub fn push(
        &mut self,
        serial: &[u8],
        revoked_at: OffsetDateTime,
        reason: RevocationReason,
    ) -> Result<(), X509Error> {
        let empty = Name::default();
        let crl_entry_extensions = match reason.crl_reason() {
            Some(r) => Some(vec![r.to_extension(&empty, &[])?]),
            None => None,
        };
        let entry = RevokedCert {
            serial_number: SerialNumber::new(serial)?,
            revocation_date: x509_time(revoked_at)?,
            crl_entry_extensions,
        };
        entry.encode_to_vec(&mut self.buf)?;
        self.count += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Where the list stands now: the entries pushed after it are
    /// [`CrlEntries::since`] it.
    pub fn mark(&self) -> EntriesMark {
        EntriesMark {
            bytes: self.buf.len(),
            count: self.count,
        }
    }

    /// The entries pushed after `mark` (a delta CRL's list), or None when
    /// the list was rebuilt since (the mark no longer fits).
    pub fn since(&self, mark: EntriesMark) -> Option<CrlEntries> {
        Some(CrlEntries {
            buf: self.buf.get(mark.bytes..)?.to_vec(),
            count: self.count.checked_sub(mark.count)?,
        })
    }

    /// How many entries were pushed after `mark`.
    pub fn count_since(&self, mark: EntriesMark) -> usize {
        self.count.saturating_sub(mark.count)
    }
}

/// The serials of encoded revokedCertificates entries, in order.
fn serials_of(entries_der: &[u8]) -> Result<Vec<Vec<u8>>, CrlCheckError> {
    use der::Decode;
    let mut reader = der::SliceReader::new(entries_der).map_err(|e| CrlCheckError::Parse(e.to_string()))?;
    let mut out = Vec::new();
    while !der::Reader::is_finished(&reader) {
        let entry = RevokedCert::decode(&mut reader).map_err(|e| CrlCheckError::Parse(e.to_string()))?;
        out.push(entry.serial_number.as_bytes().to_vec());
    }
    Ok(out)
}

/// A position in a [`CrlEntries`] list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntriesMark {
    bytes: usize,
    count: usize,
}

/// RFC 5280 §5.1.2:
/// ```text
/// TBSCertList ::= SEQUENCE {
///      version                 Version OPTIONAL, -- if present, MUST be v2
///      signature               AlgorithmIdentifier,
///      issuer                  Name,
///      thisUpdate              Time,
///      nextUpdate              Time OPTIONAL,
///      revokedCertificates     SEQUENCE OF SEQUENCE { ... } OPTIONAL,
///      crlExtensions           [0] EXPLICIT Extensions OPTIONAL }
/// ```
/// with revokedCertificates carried as already-encoded bytes.
#[derive(der::Sequence)]
struct TbsCertListRaw<'a> {
    version: Version,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    this_update: Time,
    next_update: Option<Time>,
    revoked_certificates: Option<AnyRef<'a>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    crl_extensions: Option<Extensions>,
}

/// `CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }`.
#[derive(der::Sequence)]
struct CertificateListRaw<'a> {
    tbs_cert_list: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// Everything in a CRL besides its entries.
#[derive(Debug, Clone)]
pub struct CrlParams<'a> {
    pub issuer: &'a Name,
    pub issuer_key_id: &'a [u8],
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    /// The URL certificates carry as their CRL distribution point; the
    /// Issuing Distribution Point repeats it byte for byte.
    pub distribution_point: &'a str,
    /// A root's CRL covers only CA certificates; an issuing CA's only leaves.
    pub only_ca_certs: bool,
    /// A delta CRL: the number of the complete CRL it lists changes since
    /// (the Delta CRL Indicator, RFC 5280 §5.2.4). Its IDP stays the base's.
    pub delta_base: Option<u64>,
    /// On a complete CRL whose scope has deltas: where the delta is (the
    /// Freshest CRL extension, RFC 5280 §5.2.6).
    pub freshest_crl: Option<&'a str>,
}

/// Builds and signs a CRL; returns its DER.
pub fn sign_crl(params: &CrlParams<'_>, entries: &CrlEntries, signer: &dyn Signer) -> Result<Vec<u8>, X509Error> {
    let subject = params.issuer;
    let idp = IssuingDistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![
            GeneralName::UniformResourceIdentifier(Ia5String::new(params.distribution_point)?),
        ])),
        only_contains_user_certs: !params.only_ca_certs,
        only_contains_ca_certs: params.only_ca_certs,
        only_some_reasons: None,
        indirect_crl: false,
        only_contains_attribute_certs: false,
    };
    let extensions = vec![
        AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(params.issuer_key_id)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        }
        .to_extension(subject, &[])?,
        CrlNumber(Uint::new(&params.number.to_be_bytes())?).to_extension(subject, &[])?,
        // Built by hand: x509-cert 0.2's IssuingDistributionPoint carries the
        // wrong OID (id-pe-subjectInfoAccess) in its AsExtension impl.
        Extension {
            extn_id: ID_CE_ISSUING_DISTRIBUTION_POINT,
            critical: true,
            extn_value: OctetString::new(idp.to_der()?)?,
        },
    ];
    let mut extensions = extensions;
    if let Some(base) = params.delta_base {
        extensions.push(BaseCrlNumber(Uint::new(&base.to_be_bytes())?).to_extension(subject, &[])?);
    }
    if let Some(url) = params.freshest_crl {
        extensions.push(
            FreshestCrl(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![
                    GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
                ])),
                reasons: None,
                crl_issuer: None,
            }])
            .to_extension(subject, &[])?,
        );
    }
    let revoked = if entries.is_empty() {
        // An empty list must be omitted, not encoded empty (§5.1.2.6).
        None
    } else {
        Some(AnyRef::new(Tag::Sequence, &entries.buf)?)
    };
    let tbs = TbsCertListRaw {
        version: Version::V2,
        signature: signer.signature_algorithm().clone(),
        issuer: params.issuer.clone(),
        this_update: x509_time(params.this_update)?,
        next_update: Some(x509_time(params.next_update)?),
        revoked_certificates: revoked,
        crl_extensions: Some(extensions),
    }
    .to_der()?;
    let signature = signer.sign(&tbs)?;
    let list = CertificateListRaw {
        tbs_cert_list: der::Decode::from_der(&tbs)?,
        signature_algorithm: signer.signature_algorithm().clone(),
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(list.to_der()?)
}

/// Why a signed CRL must not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlCheckError {
    #[error("the CRL does not parse back: {0}")]
    Parse(String),
    #[error("the CRL's signature does not verify with the CA's key")]
    Signature,
    #[error("the CRL's issuer is not the CA's subject")]
    Issuer,
    #[error("CRL number {got}, expected {want}")]
    Number { got: u64, want: u64 },
    #[error("CRL number {got} is not above the newest published one ({newest})")]
    NumberNotIncreasing { got: u64, newest: u64 },
    #[error("thisUpdate/nextUpdate differ from the window it was signed for")]
    Window,
    #[error("issuing distribution point: {0}")]
    Idp(&'static str),
    #[error("the CRL's entries differ from the ones it was built from")]
    Entries,
    #[error("delta CRL: {0}")]
    Delta(&'static str),
    #[error("the CRL's entries differ from the store: {0}")]
    Store(String),
}

/// A digest of a set of revoked serials: how many, and the sum of a 32-bit
/// hash of each. Kept by the store in each revocation's transaction and by
/// the CRL owner per scope, so that a CRL is compared with everything the
/// store holds for its scope without reading it: a serial missing, added or
/// replaced changes the digest (a collision needs a 32-bit coincidence).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SerialDigest {
    pub entries: i64,
    pub sum: i64,
}

impl SerialDigest {
    /// The hash one serial contributes.
    pub fn of_serial(serial: &[u8]) -> i64 {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, serial);
        let b = d.as_ref();
        i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn add(&mut self, serial: &[u8]) {
        self.entries += 1;
        self.sum += Self::of_serial(serial);
    }

    pub fn plus(self, other: SerialDigest) -> SerialDigest {
        SerialDigest {
            entries: self.entries + other.entries,
            sum: self.sum + other.sum,
        }
    }
}

/// A complete CRL's scope as its builder knows it and as the store holds
/// it: they must be equal before the CRL is served.
pub fn check_against_store(built_from: SerialDigest, in_store: SerialDigest) -> Result<(), CrlCheckError> {
    if built_from == in_store {
        return Ok(());
    }
    Err(CrlCheckError::Store(format!(
        "the store holds {} revocations for this scope, the CRL was built from {} (listed and expired off it){}",
        in_store.entries,
        built_from.entries,
        if built_from.entries == in_store.entries {
            ": the same count, other serials"
        } else {
            ""
        }
    )))
}

/// What a signed CRL is checked against before it is stored or served:
/// what it was built from, the CA's key, and the newest number published.
#[derive(Debug, Clone)]
pub struct CrlExpectation<'a> {
    pub params: &'a CrlParams<'a>,
    pub issuer_key: &'a spki::SubjectPublicKeyInfoOwned,
    pub entries: &'a CrlEntries,
    /// The highest CRL number stored for this scope, if any.
    pub newest_published: Option<u64>,
}

/// The revokedCertificates SEQUENCE, kept as its encoded contents: only a
/// SEQUENCE matches it (an `AnyRef` would take the `[0]` extensions of a
/// CRL without entries), and comparing bytes costs no decoding per entry.
struct RevokedRaw<'a>(&'a [u8]);

impl<'a> der::DecodeValue<'a> for RevokedRaw<'a> {
    fn decode_value<R: der::Reader<'a>>(reader: &mut R, header: der::Header) -> der::Result<Self> {
        Ok(RevokedRaw(reader.read_slice(header.length)?))
    }
}

impl der::EncodeValue for RevokedRaw<'_> {
    fn value_len(&self) -> der::Result<der::Length> {
        der::Length::try_from(self.0.len())
    }
    fn encode_value(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        writer.write(self.0)
    }
}

impl der::FixedTag for RevokedRaw<'_> {
    const TAG: Tag = Tag::Sequence;
}

/// A TBSCertList read without decoding its entries.
#[derive(der::Sequence)]
struct TbsCertListView<'a> {
    version: Version,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    this_update: Time,
    next_update: Option<Time>,
    revoked_certificates: Option<RevokedRaw<'a>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    crl_extensions: Option<Extensions>,
}

/// What a CRL says, once it parsed and its signature, issuer and issuing
/// distribution point checked out.
#[derive(Debug, Clone)]
pub struct CrlFacts {
    pub number: u64,
    /// A delta CRL's Delta CRL Indicator: its base's number.
    pub delta_base: Option<u64>,
    /// The Freshest CRL URL, if the CRL names one.
    pub freshest_crl: Option<String>,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
    /// The revokedCertificates entries, DER, in order.
    pub entries_der: Vec<u8>,
}

impl CrlFacts {
    /// The listed serials (INTEGER contents), in order.
    pub fn serials(&self) -> Result<Vec<Vec<u8>>, CrlCheckError> {
        serials_of(&self.entries_der)
    }
}

/// Parses a CRL and checks what any relying party checks, plus our IDP rule:
/// the signature with the issuer's key, the issuer name, a CRL number, and a
/// critical IDP naming exactly `distribution_point` with the scope flag
/// (`onlyContainsCACerts` for a root's CRL, `onlyContainsUserCerts` otherwise).
pub fn inspect_crl(
    der: &[u8],
    issuer: &Name,
    issuer_key: &spki::SubjectPublicKeyInfoOwned,
    distribution_point: &str,
    only_ca_certs: bool,
) -> Result<CrlFacts, CrlCheckError> {
    use der::Decode;
    let parse = |e: &dyn std::fmt::Display| CrlCheckError::Parse(e.to_string());
    super::keys::verify_signed_der(der, issuer_key).map_err(|e| match e {
        X509Error::BadSignature => CrlCheckError::Signature,
        other => parse(&other),
    })?;
    let outer = super::keys::SignedRaw::from_der(der).map_err(|e| parse(&e))?;
    let tbs_der = outer.tbs.to_der().map_err(|e| parse(&e))?;
    let tbs = TbsCertListView::from_der(&tbs_der).map_err(|e| parse(&e))?;
    if tbs.issuer != *issuer {
        return Err(CrlCheckError::Issuer);
    }
    let exts = tbs.crl_extensions.unwrap_or_default();
    let number = exts
        .iter()
        .find(|e| e.extn_id == <CrlNumber as const_oid::AssociatedOid>::OID)
        .map(|e| CrlNumber::from_der(e.extn_value.as_bytes()))
        .transpose()
        .map_err(|e| parse(&e))?
        .ok_or(CrlCheckError::Parse("no CRL number".into()))?;
    let as_u64 = |n: &Uint| {
        n.as_bytes()
            .iter()
            .try_fold(0u64, |n, b| n.checked_mul(256).map(|n| n + u64::from(*b)))
            .ok_or(CrlCheckError::Parse("CRL number too large".into()))
    };
    let number = as_u64(&number.0)?;
    let delta_base = match exts
        .iter()
        .find(|e| e.extn_id == <BaseCrlNumber as const_oid::AssociatedOid>::OID)
    {
        None => None,
        Some(e) if !e.critical => return Err(CrlCheckError::Parse("Delta CRL Indicator not critical".into())),
        Some(e) => Some(as_u64(
            &BaseCrlNumber::from_der(e.extn_value.as_bytes())
                .map_err(|e| parse(&e))?
                .0,
        )?),
    };
    let freshest_crl = match exts
        .iter()
        .find(|e| e.extn_id == <FreshestCrl as const_oid::AssociatedOid>::OID)
    {
        None => None,
        Some(e) => {
            let f = FreshestCrl::from_der(e.extn_value.as_bytes()).map_err(|e| parse(&e))?;
            match f.0.as_slice() {
                [DistributionPoint {
                    distribution_point: Some(DistributionPointName::FullName(names)),
                    ..
                }] => match names.as_slice() {
                    [GeneralName::UniformResourceIdentifier(uri)] => Some(uri.as_str().to_owned()),
                    _ => return Err(CrlCheckError::Parse("Freshest CRL names no single URL".into())),
                },
                _ => return Err(CrlCheckError::Parse("Freshest CRL names no single URL".into())),
            }
        }
    };
    let idp_ext = exts
        .iter()
        .find(|e| e.extn_id == ID_CE_ISSUING_DISTRIBUTION_POINT)
        .ok_or(CrlCheckError::Idp("missing"))?;
    if !idp_ext.critical {
        return Err(CrlCheckError::Idp("not critical"));
    }
    let idp = IssuingDistributionPoint::from_der(idp_ext.extn_value.as_bytes()).map_err(|e| parse(&e))?;
    let named = match &idp.distribution_point {
        Some(DistributionPointName::FullName(names)) => match names.as_slice() {
            [GeneralName::UniformResourceIdentifier(uri)] => uri.as_str() == distribution_point,
            _ => false,
        },
        _ => false,
    };
    if !named {
        return Err(CrlCheckError::Idp("its name is not the CRL's distribution point URL"));
    }
    if idp.only_contains_ca_certs != only_ca_certs || idp.only_contains_user_certs == only_ca_certs {
        return Err(CrlCheckError::Idp(
            "wrong scope (onlyContainsCACerts / onlyContainsUserCerts)",
        ));
    }
    let entries_der = tbs.revoked_certificates.map(|r| r.0.to_vec()).unwrap_or_default();
    let time = |t: Time| OffsetDateTime::from_unix_timestamp(t.to_unix_duration().as_secs() as i64);
    Ok(CrlFacts {
        number,
        delta_base,
        freshest_crl,
        this_update: time(tbs.this_update).map_err(|e| parse(&e))?,
        next_update: tbs.next_update.map(time).transpose().map_err(|e| parse(&e))?,
        entries_der,
    })
}

/// Parses a signed CRL back and checks it as a relying party would, plus
/// what only we know (Boulder's crl-checker does the same): a number above
/// every published one, the window it was signed for, and entries byte for
/// byte as built (see [`inspect_crl`] for the rest).
pub fn check_crl(der: &[u8], exp: &CrlExpectation<'_>) -> Result<(), CrlCheckError> {
    let p = exp.params;
    let facts = inspect_crl(der, p.issuer, exp.issuer_key, p.distribution_point, p.only_ca_certs)?;
    // Encoded times hold whole seconds.
    let secs = |t: OffsetDateTime| t.unix_timestamp();
    if secs(facts.this_update) != secs(p.this_update) || facts.next_update.map(secs) != Some(secs(p.next_update)) {
        return Err(CrlCheckError::Window);
    }
    if facts.number != p.number {
        return Err(CrlCheckError::Number {
            got: facts.number,
            want: p.number,
        });
    }
    if let Some(newest) = exp.newest_published.filter(|n| facts.number <= *n) {
        return Err(CrlCheckError::NumberNotIncreasing {
            got: facts.number,
            newest,
        });
    }
    if facts.delta_base != p.delta_base {
        return Err(CrlCheckError::Delta(
            "the Delta CRL Indicator is not the one it was signed with",
        ));
    }
    if let Some(base) = facts.delta_base.filter(|b| *b >= facts.number) {
        return Err(CrlCheckError::Delta(if base == facts.number {
            "a delta's number equals its base's"
        } else {
            "a delta's base number is above its own"
        }));
    }
    if facts.freshest_crl.as_deref() != p.freshest_crl {
        return Err(CrlCheckError::Delta("the Freshest CRL URL is not the scope's delta"));
    }
    if facts.entries_der != exp.entries.buf {
        return Err(CrlCheckError::Entries);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::keys::verify_signed_der;
    use crate::x509::{HashAlgorithm, KeyAlgorithm, SoftwareKey};
    use der::Decode;
    use x509_cert::crl::CertificateList;

    #[test]
    fn a_digest_tells_a_missing_an_extra_and_a_replaced_serial() {
        let of = |serials: &[&[u8]]| {
            let mut d = SerialDigest::default();
            for s in serials {
                d.add(s);
            }
            d
        };
        let crl = of(&[b"\x01", b"\x02"]);
        assert!(
            check_against_store(crl, of(&[b"\x02", b"\x01"])).is_ok(),
            "order does not matter"
        );
        let missing = check_against_store(crl, of(&[b"\x01", b"\x02", b"\x03"])).unwrap_err();
        assert!(missing.to_string().contains("holds 3 revocations"), "{missing}");
        assert!(
            check_against_store(crl, of(&[b"\x01"])).is_err(),
            "listed but not revoked"
        );
        let replaced = check_against_store(crl, of(&[b"\x01", b"\x04"])).unwrap_err();
        assert!(
            replaced.to_string().contains("the same count, other serials"),
            "{replaced}"
        );
        // What expired off a CRL is counted beside what it lists.
        let listed = of(&[b"\x01"]);
        let expired = of(&[b"\x02"]);
        assert_eq!(listed.plus(expired), crl);
    }

    /// The issuer's name, a fixed instant, and the parameters of a CRL
    /// numbered 7 of `current.crl` signed then, valid 7 days.
    fn ca_name() -> Name {
        crate::x509::names::SubjectParts {
            common_name: "CA".into(),
            ..Default::default()
        }
        .to_name()
        .unwrap()
    }

    fn at() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn params(name: &Name) -> CrlParams<'_> {
        CrlParams {
            issuer: name,
            issuer_key_id: &[1; 20],
            number: 7,
            this_update: at(),
            next_update: at() + time::Duration::days(7),
            distribution_point: "http://x/crls/a_v1/current.crl",
            only_ca_certs: false,
            delta_base: None,
            freshest_crl: None,
        }
    }

    #[test]
    fn crl_decodes_and_verifies() {
        let (key, _) = SoftwareKey::generate(KeyAlgorithm::EcP256, HashAlgorithm::Sha256).unwrap();
        let name = ca_name();
        let now = at();
        let mut entries = CrlEntries::new();
        entries
            .push(&[0x01, 0x02], now, RevocationReason::KeyCompromise)
            .unwrap();
        entries.push(&[0x7f; 16], now, RevocationReason::Unspecified).unwrap();
        let params = params(&name);
        let der = sign_crl(&params, &entries, &key).unwrap();
        verify_signed_der(&der, key.public_key()).unwrap();
        let crl = CertificateList::from_der(&der).unwrap();
        let revoked = crl.tbs_cert_list.revoked_certificates.unwrap();
        assert_eq!(revoked.len(), 2);
        assert_eq!(revoked[0].serial_number.as_bytes(), &[0x01, 0x02]);
        assert!(revoked[0].crl_entry_extensions.is_some());
        assert!(revoked[1].crl_entry_extensions.is_none());

        let exts = crl.tbs_cert_list.crl_extensions.unwrap();
        let idp = exts
            .iter()
            .find(|e| e.extn_id == ID_CE_ISSUING_DISTRIBUTION_POINT)
            .unwrap();
        assert!(idp.critical);

        check_crl(
            &der,
            &CrlExpectation {
                params: &params,
                issuer_key: key.public_key(),
                entries: &entries,
                newest_published: Some(6),
            },
        )
        .unwrap();

        let empty = sign_crl(&params, &CrlEntries::new(), &key).unwrap();
        assert!(CertificateList::from_der(&empty)
            .unwrap()
            .tbs_cert_list
            .revoked_certificates
            .is_none());
    }

    /// A delta CRL's list is the tail of its scope's entries after the mark
    /// taken when the complete CRL was cut.
    #[test]
    fn entries_since_a_mark_are_the_tail() {
        let now = at();
        let mut all = CrlEntries::new();
        all.push(&[1], now, RevocationReason::KeyCompromise).unwrap();
        let mark = all.mark();
        assert_eq!(all.since(mark).unwrap().len(), 0);
        let mut tail = CrlEntries::new();
        for serial in [2u8, 3, 4] {
            all.push(&[serial], now, RevocationReason::Superseded).unwrap();
            tail.push(&[serial], now, RevocationReason::Superseded).unwrap();
        }
        let since = all.since(mark).unwrap();
        assert_eq!((since.len(), all.count_since(mark)), (3, 3));
        assert_eq!(since.buf, tail.buf);
        // A list rebuilt shorter than the mark (pruned) has no tail after it.
        let mut pruned = CrlEntries::new();
        pruned.push(&[9], now, RevocationReason::Unspecified).unwrap();
        let far = all.mark();
        assert!(pruned.since(far).is_none());
    }

    /// Each way a CRL can come out wrong is caught by the check before
    /// publication, so it is never stored or served.
    #[test]
    fn check_before_publish_catches_a_bad_crl() {
        let (key, _) = SoftwareKey::generate(KeyAlgorithm::EcP256, HashAlgorithm::Sha256).unwrap();
        let (other, _) = SoftwareKey::generate(KeyAlgorithm::EcP256, HashAlgorithm::Sha256).unwrap();
        let name = ca_name();
        let now = at();
        let mut entries = CrlEntries::new();
        entries.push(&[0x05], now, RevocationReason::KeyCompromise).unwrap();
        let params = params(&name);
        let check = |der: &[u8], params: &CrlParams<'_>, entries: &CrlEntries, newest: Option<u64>| {
            check_crl(
                der,
                &CrlExpectation {
                    params,
                    issuer_key: key.public_key(),
                    entries,
                    newest_published: newest,
                },
            )
        };
        let good = sign_crl(&params, &entries, &key).unwrap();
        assert_eq!(check(&good, &params, &entries, Some(6)), Ok(()));

        // A number not above the newest published one.
        assert_eq!(
            check(&good, &params, &entries, Some(7)),
            Err(CrlCheckError::NumberNotIncreasing { got: 7, newest: 7 })
        );
        // An IDP that does not name the URL in the certificates.
        let wrong_dp = CrlParams {
            distribution_point: "http://x/crls/a_v1/other.crl",
            ..params.clone()
        };
        let bad = sign_crl(&wrong_dp, &entries, &key).unwrap();
        assert!(matches!(
            check(&bad, &params, &entries, None),
            Err(CrlCheckError::Idp(_))
        ));
        // The wrong scope flag (a CA-certificates-only CRL for leaves).
        let arl = CrlParams {
            only_ca_certs: true,
            ..params.clone()
        };
        let bad = sign_crl(&arl, &entries, &key).unwrap();
        assert!(matches!(
            check(&bad, &params, &entries, None),
            Err(CrlCheckError::Idp(_))
        ));
        // Entries that differ from the set it was built from.
        let mut more = entries.clone();
        more.push(&[0x06], now, RevocationReason::Unspecified).unwrap();
        let bad = sign_crl(&params, &more, &key).unwrap();
        assert_eq!(check(&bad, &params, &entries, None), Err(CrlCheckError::Entries));
        // Signed by another key.
        let bad = sign_crl(&params, &entries, &other).unwrap();
        assert_eq!(check(&bad, &params, &entries, None), Err(CrlCheckError::Signature));
        // Another window or number than intended.
        let later = CrlParams {
            next_update: now + time::Duration::days(8),
            ..params.clone()
        };
        let bad = sign_crl(&later, &entries, &key).unwrap();
        assert_eq!(check(&bad, &params, &entries, None), Err(CrlCheckError::Window));
        let renumbered = CrlParams {
            number: 9,
            ..params.clone()
        };
        let bad = sign_crl(&renumbered, &entries, &key).unwrap();
        assert_eq!(
            check(&bad, &params, &entries, None),
            Err(CrlCheckError::Number { got: 9, want: 7 })
        );
        // Bytes that are not a CRL at all.
        assert!(matches!(
            check(&good[..good.len() - 3], &params, &entries, None),
            Err(CrlCheckError::Parse(_) | CrlCheckError::Signature)
        ));

        // Deltas: the indicator and the Freshest CRL URL are what was meant.
        let delta = CrlParams {
            delta_base: Some(6),
            ..params.clone()
        };
        let signed = sign_crl(&delta, &entries, &key).unwrap();
        assert_eq!(check(&signed, &delta, &entries, None), Ok(()));
        assert!(matches!(
            check(&signed, &params, &entries, None),
            Err(CrlCheckError::Delta(_))
        ));
        let own_base = CrlParams {
            delta_base: Some(7),
            ..params.clone()
        };
        let bad = sign_crl(&own_base, &entries, &key).unwrap();
        assert!(matches!(
            check(&bad, &own_base, &entries, None),
            Err(CrlCheckError::Delta(_))
        ));
        let with_delta = CrlParams {
            freshest_crl: Some("http://x/crls/a_v1/current-delta.crl"),
            ..params.clone()
        };
        let signed = sign_crl(&with_delta, &entries, &key).unwrap();
        assert_eq!(check(&signed, &with_delta, &entries, None), Ok(()));
        let facts = inspect_crl(&signed, &name, key.public_key(), params.distribution_point, false).unwrap();
        assert_eq!(facts.freshest_crl.as_deref(), with_delta.freshest_crl);
        assert!(matches!(
            check(&signed, &params, &entries, None),
            Err(CrlCheckError::Delta(_))
        ));
    }
}
