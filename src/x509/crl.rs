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
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;

use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::keys::verify_signed_der;
    use crate::x509::{HashAlgorithm, KeyAlgorithm, SoftwareKey};
    use der::Decode;
    use x509_cert::crl::CertificateList;

    #[test]
    fn crl_decodes_and_verifies() {
        let (key, _) = SoftwareKey::generate(KeyAlgorithm::EcP256, HashAlgorithm::Sha256).unwrap();
        let name = crate::x509::names::SubjectParts {
            common_name: "CA".into(),
            ..Default::default()
        }
        .to_name()
        .unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut entries = CrlEntries::new();
        entries
            .push(&[0x01, 0x02], now, RevocationReason::KeyCompromise)
            .unwrap();
        entries.push(&[0x7f; 16], now, RevocationReason::Unspecified).unwrap();
        let params = CrlParams {
            issuer: &name,
            issuer_key_id: &[1; 20],
            number: 7,
            this_update: now,
            next_update: now + time::Duration::days(7),
            distribution_point: "http://x/crls/a_v1/current.crl",
            only_ca_certs: false,
        };
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

        let empty = sign_crl(&params, &CrlEntries::new(), &key).unwrap();
        assert!(CertificateList::from_der(&empty)
            .unwrap()
            .tbs_cert_list
            .revoked_certificates
            .is_none());
    }
}
