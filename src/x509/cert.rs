//! Certificate building and signing (RFC 5280 profile for CAs and leaves),
//! and the checks applied to certificates that come from outside.

use der::asn1::{BitString, GeneralizedTime, Ia5String, ObjectIdentifier, OctetString, UtcTime};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use time::OffsetDateTime;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints,
    ExtendedKeyUsage, FreshestCrl, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::keys::{verify_signed_der, Signer};
use super::{oids, X509Error};

/// Where relying parties find revocation data and the issuer's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationPointers {
    pub crl_url: String,
    /// Where the delta CRL of `crl_url` is (the Freshest CRL extension).
    pub delta_crl_url: Option<String>,
    pub ca_issuers_url: String,
    pub ocsp_url: Option<String>,
}

/// What kind of certificate is being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// A CA certificate; `path_len` is the basicConstraints pathLenConstraint.
    Ca { path_len: Option<u8> },
    /// An end-entity certificate.
    EndEntity,
    /// A delegated OCSP responder: end entity plus id-pkix-ocsp-nocheck
    /// (RFC 6960 §4.2.2.2.1), so relying parties do not ask about it.
    OcspResponder,
}

/// Everything that goes into one certificate.
#[derive(Debug, Clone)]
pub struct CertRequest {
    pub serial: Vec<u8>,
    pub subject: Name,
    pub issuer: Name,
    /// The issuer's subjectKeyIdentifier (the subject's own for a root).
    pub issuer_key_id: Vec<u8>,
    pub public_key: SubjectPublicKeyInfoOwned,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub role: CertRole,
    pub key_usage: KeyUsage,
    pub ekus: Vec<ObjectIdentifier>,
    pub pointers: Option<RevocationPointers>,
    /// A subjectAltName extension copied from the request, if any.
    pub subject_alt_name: Option<Extension>,
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
pub fn x509_time(t: OffsetDateTime) -> Result<Time, X509Error> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| X509Error::Time("before 1970".into()))?;
    let d = std::time::Duration::from_secs(secs);
    if t.year() < 2050 {
        Ok(Time::UtcTime(UtcTime::from_unix_duration(d)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_unix_duration(d)?))
    }
}

/// The inverse of [`x509_time`].
pub fn from_x509_time(t: &Time) -> Result<OffsetDateTime, X509Error> {
    let secs = t.to_unix_duration().as_secs();
    OffsetDateTime::from_unix_timestamp(secs as i64).map_err(|e| X509Error::Time(e.to_string()))
}

/// RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        spki.subject_public_key.raw_bytes(),
    )
    .as_ref()
    .to_vec()
}

/// A positive serial of 127 random bits from the system CSPRNG, 16 octets
/// long (first octet in 0x01..=0x7f, so it needs no sign byte).
pub fn random_serial() -> Result<Vec<u8>, X509Error> {
    use aws_lc_rs::rand::SecureRandom;
    let mut s = vec![0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut s)
        .map_err(|_| X509Error::Crypto("random serial"))?;
    s[0] &= 0x7f;
    if s[0] == 0 {
        s[0] = 1;
    }
    Ok(s)
}

fn ext<E: AsExtension>(subject: &Name, value: &E) -> Result<Extension, X509Error> {
    Ok(value.to_extension(subject, &[])?)
}

fn uri(s: &str) -> Result<GeneralName, X509Error> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(s)?))
}

/// Builds the extensions for a request, in a stable order.
fn extensions(req: &CertRequest) -> Result<Vec<Extension>, X509Error> {
    let subject = &req.subject;
    let mut exts = Vec::new();
    if let CertRole::Ca { path_len } = req.role {
        // critical = true comes from AsExtension for BasicConstraints with ca=true.
        exts.push(ext(
            subject,
            &BasicConstraints {
                ca: true,
                path_len_constraint: path_len,
            },
        )?);
    }
    exts.push(ext(subject, &req.key_usage)?);
    if !req.ekus.is_empty() {
        // Non-critical, as common CA practice: a critical EKU on a CA
        // certificate breaks relying parties that ignore EKU chaining.
        let mut eku = ext(subject, &ExtendedKeyUsage(req.ekus.clone()))?;
        eku.critical = false;
        exts.push(eku);
    }
    exts.push(ext(
        subject,
        &SubjectKeyIdentifier(OctetString::new(key_identifier(&req.public_key))?),
    )?);
    exts.push(ext(
        subject,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(req.issuer_key_id.clone())?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )?);
    if let Some(p) = &req.pointers {
        exts.push(ext(
            subject,
            &CrlDistributionPoints(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![uri(&p.crl_url)?])),
                reasons: None,
                crl_issuer: None,
            }]),
        )?);
        if let Some(delta) = &p.delta_crl_url {
            // RFC 5280 §5.2.6: how relying parties find the delta CRL.
            exts.push(ext(
                subject,
                &FreshestCrl(vec![DistributionPoint {
                    distribution_point: Some(DistributionPointName::FullName(vec![uri(delta)?])),
                    reasons: None,
                    crl_issuer: None,
                }]),
            )?);
        }
        let mut access = vec![AccessDescription {
            access_method: oids::AD_CA_ISSUERS,
            access_location: uri(&p.ca_issuers_url)?,
        }];
        if let Some(ocsp) = &p.ocsp_url {
            access.push(AccessDescription {
                access_method: oids::AD_OCSP,
                access_location: uri(ocsp)?,
            });
        }
        exts.push(ext(subject, &AuthorityInfoAccessSyntax(access))?);
    }
    if req.role == CertRole::OcspResponder {
        exts.push(Extension {
            extn_id: oids::OCSP_NOCHECK,
            critical: false,
            extn_value: OctetString::new(der::asn1::Null.to_der()?)?,
        });
    }
    if let Some(san) = &req.subject_alt_name {
        let mut san = san.clone();
        // RFC 5280 §4.2.1.6: critical exactly when the subject is empty.
        san.critical = req.subject.0.is_empty();
        exts.push(san);
    }
    Ok(exts)
}

/// Builds and signs a certificate; returns its DER.
pub fn issue(req: &CertRequest, signer: &dyn Signer) -> Result<Vec<u8>, X509Error> {
    if req.not_after <= req.not_before {
        return Err(X509Error::Time("notAfter must follow notBefore".into()));
    }
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&req.serial)?,
        signature: signer.signature_algorithm().clone(),
        issuer: req.issuer.clone(),
        validity: Validity {
            not_before: x509_time(req.not_before)?,
            not_after: x509_time(req.not_after)?,
        },
        subject: req.subject.clone(),
        subject_public_key_info: req.public_key.clone(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions(req)?),
    };
    let tbs_der = tbs.to_der()?;
    let signature = signer.sign(&tbs_der)?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: signer.signature_algorithm().clone(),
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(cert.to_der()?)
}

/// Key usage for CA certificates (critical, RFC 5280 §4.2.1.3).
pub fn ca_key_usage() -> KeyUsage {
    KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign | KeyUsages::CRLSign)
}

/// Key usage for a leaf: RSA keys may encipher keys, EC keys may not
/// (RFC 8813 §3 forbids keyEncipherment for id-ecPublicKey).
pub fn leaf_key_usage(spki: &SubjectPublicKeyInfoOwned) -> KeyUsage {
    if spki.algorithm.oid == oids::RSA_ENCRYPTION {
        KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment)
    } else {
        KeyUsage(KeyUsages::DigitalSignature.into())
    }
}

/// A leaf's key usage from Graph-style names (a profile's choice), checked
/// against what the key can do: encipherment needs RSA, key agreement EC;
/// CA bits are never a leaf's.
pub fn leaf_key_usage_named(names: &[String], spki: &SubjectPublicKeyInfoOwned) -> Result<KeyUsage, String> {
    let rsa = spki.algorithm.oid == oids::RSA_ENCRYPTION;
    let mut bits = der::flagset::FlagSet::<KeyUsages>::default();
    for n in names {
        let bit = match n.as_str() {
            "DigitalSignature" => KeyUsages::DigitalSignature,
            "NonRepudiation" => KeyUsages::NonRepudiation,
            "KeyEncipherment" if rsa => KeyUsages::KeyEncipherment,
            "DataEncipherment" if rsa => KeyUsages::DataEncipherment,
            "KeyAgreement" if !rsa => KeyUsages::KeyAgreement,
            other => return Err(format!("key usage {other} does not fit this key")),
        };
        bits |= bit;
    }
    Ok(KeyUsage(bits))
}

/// Graph-style names of a KeyUsage's bits.
pub fn key_usage_names(ku: &KeyUsage) -> Vec<String> {
    let all = [
        (KeyUsages::DigitalSignature, "DigitalSignature"),
        (KeyUsages::NonRepudiation, "NonRepudiation"),
        (KeyUsages::KeyEncipherment, "KeyEncipherment"),
        (KeyUsages::DataEncipherment, "DataEncipherment"),
        (KeyUsages::KeyAgreement, "KeyAgreement"),
        (KeyUsages::KeyCertSign, "KeyCertSign"),
        (KeyUsages::CRLSign, "CrlSign"),
        (KeyUsages::EncipherOnly, "EncipherOnly"),
        (KeyUsages::DecipherOnly, "DecipherOnly"),
    ];
    all.iter()
        .filter(|(bit, _)| ku.0.contains(*bit))
        .map(|(_, n)| (*n).to_owned())
        .collect()
}

/// A certificate parsed from DER, with the facts the domain needs.
#[derive(Debug, Clone)]
pub struct ParsedCert {
    pub cert: Certificate,
    pub der: Vec<u8>,
}

impl ParsedCert {
    pub fn from_der(der: &[u8]) -> Result<Self, X509Error> {
        let cert = Certificate::from_der(der)?;
        Ok(ParsedCert {
            cert,
            der: der.to_vec(),
        })
    }

    pub fn tbs(&self) -> &TbsCertificate {
        &self.cert.tbs_certificate
    }

    /// Checks that `issuer` signed this certificate.
    pub fn verify_signed_by(&self, issuer: &SubjectPublicKeyInfoOwned) -> Result<(), X509Error> {
        verify_signed_der(&self.der, issuer)
    }

    pub fn basic_constraints(&self) -> Result<Option<BasicConstraints>, X509Error> {
        Ok(self.tbs().get::<BasicConstraints>()?.map(|(_, bc)| bc))
    }

    pub fn key_usage(&self) -> Result<Option<KeyUsage>, X509Error> {
        Ok(self.tbs().get::<KeyUsage>()?.map(|(_, ku)| ku))
    }

    pub fn ekus(&self) -> Result<Vec<ObjectIdentifier>, X509Error> {
        Ok(self
            .tbs()
            .get::<ExtendedKeyUsage>()?
            .map(|(_, e)| e.0)
            .unwrap_or_default())
    }

    pub fn subject_key_id(&self) -> Result<Option<Vec<u8>>, X509Error> {
        Ok(self
            .tbs()
            .get::<SubjectKeyIdentifier>()?
            .map(|(_, s)| s.0.as_bytes().to_vec()))
    }

    /// The caIssuers URI from Authority Information Access, if any.
    pub fn ca_issuers_uri(&self) -> Result<Option<String>, X509Error> {
        let Some((_, aia)) = self.tbs().get::<AuthorityInfoAccessSyntax>()? else {
            return Ok(None);
        };
        Ok(aia
            .0
            .iter()
            .find_map(|ad| match (&ad.access_location, ad.access_method) {
                (GeneralName::UniformResourceIdentifier(u), m) if m == oids::AD_CA_ISSUERS => Some(u.to_string()),
                _ => None,
            }))
    }

    pub fn not_before(&self) -> Result<OffsetDateTime, X509Error> {
        from_x509_time(&self.tbs().validity.not_before)
    }

    pub fn not_after(&self) -> Result<OffsetDateTime, X509Error> {
        from_x509_time(&self.tbs().validity.not_after)
    }

    /// True when this certificate may act as a CA: basicConstraints cA and,
    /// where keyUsage is present, keyCertSign.
    pub fn is_ca(&self) -> Result<bool, X509Error> {
        let bc = self.basic_constraints()?.is_some_and(|bc| bc.ca);
        let ku_ok = self.key_usage()?.is_none_or(|ku| ku.0.contains(KeyUsages::KeyCertSign));
        Ok(bc && ku_ok)
    }

    pub fn is_self_issued(&self) -> bool {
        self.tbs().issuer == self.tbs().subject
    }

    pub fn serial_hex(&self) -> String {
        super::hex_upper(self.tbs().serial_number.as_bytes())
    }

    /// Refuses a serial number that is not a positive INTEGER (RFC 5280
    /// §4.1.2.2). Such certificates exist (the encoding is a plain DER
    /// INTEGER), but one cannot be a CA of ours: its [`serial_hex`] is not the
    /// form typed serials normalize to ([`super::normalize_serial`] reads
    /// `DF…` as the positive `00DF…`), so it would be shown and stored as a
    /// serial that names no certificate.
    ///
    /// [`serial_hex`]: ParsedCert::serial_hex
    pub fn check_serial(&self) -> Result<(), X509Error> {
        let bytes = self.tbs().serial_number.as_bytes();
        match bytes.first() {
            Some(b) if b & 0x80 != 0 => Err(X509Error::Malformed(
                "the serial number is negative (RFC 5280 requires a positive integer)",
            )),
            _ if bytes.iter().all(|b| *b == 0) => Err(X509Error::Malformed(
                "the serial number is zero (RFC 5280 requires a positive integer)",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::normalize_serial;

    /// Found by the `cert_upload` fuzz target (a seed's serial byte mutated):
    /// a certificate whose serial is the negative INTEGER `DF34567890ABCDEF`
    /// parses, but its stored form is not what typed serials normalize to
    /// (`00DF…`). Uploading it as a CA's certificate is refused.
    #[test]
    fn fuzz_cert_upload_negative_serial_refused() {
        let der = include_bytes!("testdata/fuzz-cert_upload-negative-serial.der");
        let cert = ParsedCert::from_der(der).unwrap();
        let hex = cert.serial_hex();
        assert_eq!(hex, "DF34567890ABCDEF");
        assert_ne!(normalize_serial(&hex).as_deref(), Some(hex.as_str()));
        assert!(cert.check_serial().is_err());

        // The same certificate with a positive serial passes, and its serial
        // is a fixed point of normalize_serial.
        let mut positive = der.to_vec();
        assert_eq!(positive[15], 0xDF, "serial contents start at offset 15");
        positive[15] = 0x12;
        let cert = ParsedCert::from_der(&positive).unwrap();
        cert.check_serial().unwrap();
        let hex = cert.serial_hex();
        assert_eq!(normalize_serial(&hex).as_deref(), Some(hex.as_str()));
    }
}
