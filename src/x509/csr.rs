//! PKCS#10 certification requests (RFC 2986): verifying the ones devices send,
//! and producing the one an externally rooted issuing CA hands to its signer.

use der::asn1::{BitString, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName, SubjectKeyIdentifier};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};

use super::cert::{ca_key_usage, key_identifier};
use super::keys::{verify_signed_der, Signer};
use super::{oids, X509Error};

/// A challenge as a device sent it; its `Debug` never shows it.
#[derive(Clone)]
pub struct ChallengePassword(pub zeroize::Zeroizing<String>);

impl std::fmt::Debug for ChallengePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChallengePassword(..)")
    }
}

/// A CSR whose signature has been checked.
#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    pub subject: Name,
    pub public_key: SubjectPublicKeyInfoOwned,
    /// EKUs the requester asked for (empty when none were requested).
    pub requested_ekus: Vec<der::asn1::ObjectIdentifier>,
    /// The requested subjectAltName extension, copied verbatim.
    pub subject_alt_name: Option<Extension>,
    /// PKCS#9 challengePassword (SCEP's challenge), if present.
    pub challenge_password: Option<ChallengePassword>,
}

/// Largest CSR we accept: far above any real one, small enough to bound work.
pub const MAX_CSR_LEN: usize = 64 * 1024;

/// Parses a DER CSR, refuses keys weaker than `min_strength` bits of
/// security (checked first: a 1024-bit RSA key deserves that answer, not a
/// signature failure), and verifies its self-signature (proof of possession).
pub fn verify(der: &[u8], min_strength: u16) -> Result<VerifiedCsr, X509Error> {
    if der.len() > MAX_CSR_LEN {
        return Err(X509Error::Malformed("CSR larger than 64 KiB"));
    }
    super::check_der_shape(der, 64)?;
    let req = CertReq::from_der(der)?;
    let strength = super::keys::strength_bits(&req.info.public_key)?;
    if strength < min_strength {
        return Err(X509Error::WeakKey(format!(
            "the requested key offers {strength} bits of security; at least {min_strength} (RSA-2048, P-256) is required"
        )));
    }
    verify_signed_der(der, &req.info.public_key)?;
    from_info(req.info)
}

/// What a request asks for, read from its CertificationRequestInfo
/// (whose signature has been checked, or is checked by the caller).
fn from_info(info: CertReqInfo) -> Result<VerifiedCsr, X509Error> {
    let mut requested_ekus = Vec::new();
    let mut subject_alt_name = None;
    let mut challenge_password = None;
    for attr in info.attributes.iter() {
        if attr.oid == super::scep::CHALLENGE_PASSWORD {
            challenge_password = attr
                .values
                .iter()
                .next()
                .map(directory_string)
                .transpose()?
                .map(ChallengePassword);
            continue;
        }
        if attr.oid != oids::EXTENSION_REQUEST {
            continue;
        }
        for value in attr.values.iter() {
            let exts: Vec<Extension> = value.decode_as()?;
            for e in exts {
                if e.extn_id == <ExtendedKeyUsage as der::oid::AssociatedOid>::OID {
                    requested_ekus = ExtendedKeyUsage::from_der(e.extn_value.as_bytes())?.0;
                } else if e.extn_id == <SubjectAltName as der::oid::AssociatedOid>::OID {
                    // Parse to reject garbage; keep the original encoding.
                    SubjectAltName::from_der(e.extn_value.as_bytes())?;
                    subject_alt_name = Some(e);
                }
            }
        }
    }
    Ok(VerifiedCsr {
        subject: info.subject,
        public_key: info.public_key,
        requested_ekus,
        subject_alt_name,
        challenge_password,
    })
}

/// A request's CertificationRequestInfo without its challengePassword: what
/// is kept of a request that waits for approval (the secret is not stored).
pub fn without_challenge(der: &[u8]) -> Result<Vec<u8>, X509Error> {
    let mut info = CertReq::from_der(der)?.info;
    let kept: Vec<Attribute> = info
        .attributes
        .iter()
        .filter(|a| a.oid != super::scep::CHALLENGE_PASSWORD)
        .cloned()
        .collect();
    info.attributes = SetOfVec::try_from(kept)?;
    Ok(info.to_der()?)
}

/// Reads back what [`without_challenge`] kept, checking the key's strength
/// again (the signature was checked when the request arrived).
pub fn from_kept_info(der: &[u8], min_strength: u16) -> Result<VerifiedCsr, X509Error> {
    let info = CertReqInfo::from_der(der)?;
    let strength = super::keys::strength_bits(&info.public_key)?;
    if strength < min_strength {
        return Err(X509Error::WeakKey(format!("{strength} bits of security")));
    }
    from_info(info)
}

/// The challengePassword of a request, read without verifying it (for rate
/// limits before the request is decided; `verify` reads it again).
pub fn challenge_password(der: &[u8]) -> Option<ChallengePassword> {
    let req = CertReq::from_der(der).ok()?;
    let attr = req
        .info
        .attributes
        .iter()
        .find(|a| a.oid == super::scep::CHALLENGE_PASSWORD)?;
    attr.values
        .iter()
        .next()
        .and_then(|v| directory_string(v).ok())
        .map(ChallengePassword)
}

/// A DirectoryString's text (challengePassword is one).
fn directory_string(v: &der::Any) -> Result<zeroize::Zeroizing<String>, X509Error> {
    use der::Tagged;
    let s = match v.tag() {
        der::Tag::PrintableString => v.decode_as::<der::asn1::PrintableString>()?.to_string(),
        der::Tag::Utf8String => v.decode_as::<String>()?,
        der::Tag::Ia5String => v.decode_as::<der::asn1::Ia5String>()?.to_string(),
        _ => return Err(X509Error::Malformed("challengePassword is not a DirectoryString")),
    };
    Ok(zeroize::Zeroizing::new(s))
}

/// Builds the CSR of a CA that an external CA will sign: subject, the CA's
/// key, and an extensionRequest for basicConstraints cA (pathLen 0), CA key
/// usage, the requested EKUs and the subjectKeyIdentifier.
pub fn build_ca_request(
    subject: &Name,
    signer: &dyn Signer,
    ekus: &[der::asn1::ObjectIdentifier],
) -> Result<Vec<u8>, X509Error> {
    let mut exts = vec![
        BasicConstraints {
            ca: true,
            path_len_constraint: Some(0),
        }
        .to_extension(subject, &[])?,
        ca_key_usage().to_extension(subject, &[])?,
        SubjectKeyIdentifier(OctetString::new(key_identifier(signer.public_key()))?).to_extension(subject, &[])?,
    ];
    if !ekus.is_empty() {
        let mut e = ExtendedKeyUsage(ekus.to_vec()).to_extension(subject, &[])?;
        e.critical = false;
        exts.push(e);
    }
    let ext_req = ExtensionReq(exts);
    let attr = Attribute {
        oid: oids::EXTENSION_REQUEST,
        values: SetOfVec::try_from(vec![Any::encode_from(&ext_req.0)?])?,
    };
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.clone(),
        public_key: signer.public_key().clone(),
        attributes: SetOfVec::try_from(vec![attr])?,
    };
    let signature = signer.sign(&info.to_der()?)?;
    let req = CertReq {
        info,
        algorithm: signer.signature_algorithm().clone(),
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(req.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::names::SubjectParts;
    use crate::x509::{HashAlgorithm, KeyAlgorithm, SoftwareKey};

    fn request(kind: KeyAlgorithm) -> Vec<u8> {
        let (key, _) = SoftwareKey::generate(kind, HashAlgorithm::Sha256).unwrap();
        let name = SubjectParts {
            common_name: "device-1".into(),
            ..Default::default()
        }
        .to_name()
        .unwrap();
        build_ca_request(&name, &key, &[oids::KP_CLIENT_AUTH]).unwrap()
    }

    #[test]
    fn own_request_verifies() {
        let csr = verify(&request(KeyAlgorithm::EcP256), 112).unwrap();
        assert_eq!(csr.requested_ekus, vec![oids::KP_CLIENT_AUTH]);
        assert_eq!(
            crate::x509::names::common_name(&csr.subject).as_deref(),
            Some("device-1")
        );
    }

    #[test]
    fn tampered_request_is_refused() {
        let mut der = request(KeyAlgorithm::EcP256);
        // Flip a byte inside the subject's commonName ("device-1").
        let pos = der.windows(8).position(|w| w == b"device-1").unwrap();
        der[pos] ^= 0x01;
        assert!(matches!(verify(&der, 112), Err(X509Error::BadSignature)));
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        for input in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x00", &[0xff; 100]] {
            assert!(verify(input, 112).is_err());
        }
    }
}
