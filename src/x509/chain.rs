//! Path building for an externally signed CA certificate: from the uploaded
//! certificate up to a self-signed anchor through the certificates given,
//! every signature verified, every certificate a CA within its validity.

use time::OffsetDateTime;

use super::cert::ParsedCert;
use super::{names, X509Error};

/// Longest path accepted above the uploaded certificate.
pub const MAX_PATH: usize = 8;

/// Why no path was found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("no certificate in the chain signed {0}")]
    NoIssuer(String),
    #[error("a chain certificate is not a CA certificate")]
    NotCa,
    #[error("a chain certificate is not within its validity period")]
    OutOfValidity,
    #[error("the chain is longer than {MAX_PATH} certificates")]
    TooLong,
    #[error("chain certificate: {0}")]
    Malformed(String),
}

impl From<X509Error> for PathError {
    fn from(e: X509Error) -> Self {
        PathError::Malformed(e.to_string())
    }
}

/// The certificates above `cert`, issuer first, ending with a self-issued
/// anchor: each one found among `candidates` by subject and signature.
pub fn build_path(
    cert: &ParsedCert,
    candidates: &[ParsedCert],
    now: OffsetDateTime,
) -> Result<Vec<ParsedCert>, PathError> {
    let mut path: Vec<ParsedCert> = Vec::new();
    let mut current = cert.clone();
    loop {
        let issuer = candidates
            .iter()
            .find(|c| {
                c.tbs().subject == current.tbs().issuer
                    && current.verify_signed_by(&c.tbs().subject_public_key_info).is_ok()
            })
            .cloned()
            .ok_or_else(|| PathError::NoIssuer(names::graph_subject_name(&current.tbs().subject)))?;
        if !issuer.is_ca()? {
            return Err(PathError::NotCa);
        }
        if !(issuer.not_before()? <= now && now < issuer.not_after()?) {
            return Err(PathError::OutOfValidity);
        }
        let done = issuer.is_self_issued();
        path.push(issuer.clone());
        if done {
            return Ok(path);
        }
        if path.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        current = issuer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::cert::{self, CertRequest, CertRole};
    use crate::x509::names::SubjectParts;
    use crate::x509::{HashAlgorithm, KeyAlgorithm, Signer, SoftwareKey};
    use time::Duration;

    struct Ca {
        key: SoftwareKey,
        name: x509_cert::name::Name,
    }

    fn ca(cn: &str) -> Ca {
        let (key, _) = SoftwareKey::generate(KeyAlgorithm::EcP256, HashAlgorithm::Sha256).unwrap();
        let name = SubjectParts {
            common_name: cn.into(),
            ..Default::default()
        }
        .to_name()
        .unwrap();
        Ca { key, name }
    }

    /// `subject`'s certificate signed by `issuer`, valid around `now` unless `expired`.
    fn certify(subject: &Ca, issuer: &Ca, role: CertRole, expired: bool) -> ParsedCert {
        let now = OffsetDateTime::now_utc();
        let (not_before, not_after) = if expired {
            (now - Duration::days(10), now - Duration::days(1))
        } else {
            (now - Duration::days(1), now + Duration::days(10))
        };
        let der = cert::issue(
            &CertRequest {
                serial: cert::random_serial().unwrap(),
                subject: subject.name.clone(),
                issuer: issuer.name.clone(),
                issuer_key_id: cert::key_identifier(issuer.key.public_key()),
                public_key: subject.key.public_key().clone(),
                not_before,
                not_after,
                role,
                key_usage: cert::ca_key_usage(),
                ekus: Vec::new(),
                pointers: None,
                subject_alt_name: None,
            },
            &issuer.key,
        )
        .unwrap();
        ParsedCert::from_der(&der).unwrap()
    }

    const CA: CertRole = CertRole::Ca { path_len: None };

    #[test]
    fn finds_the_path_to_the_anchor_in_any_order() {
        let (root, mid, ours) = (ca("Root"), ca("Mid"), ca("Ours"));
        let root_cert = certify(&root, &root, CA, false);
        let mid_cert = certify(&mid, &root, CA, false);
        let our_cert = certify(&ours, &mid, CA, false);
        let now = OffsetDateTime::now_utc();
        let path = build_path(&our_cert, &[root_cert.clone(), mid_cert.clone()], now).unwrap();
        assert_eq!(
            path.iter().map(|c| c.der.clone()).collect::<Vec<_>>(),
            [mid_cert.der, root_cert.der]
        );
    }

    #[test]
    fn refuses_a_missing_link_a_non_ca_and_an_expired_issuer() {
        let (root, mid, ours) = (ca("Root"), ca("Mid"), ca("Ours"));
        let now = OffsetDateTime::now_utc();
        let root_cert = certify(&root, &root, CA, false);
        let our_cert = certify(&ours, &mid, CA, false);
        assert_eq!(
            build_path(&our_cert, std::slice::from_ref(&root_cert), now).err(),
            Some(PathError::NoIssuer("CN=Ours".into()))
        );
        let leaf_mid = certify(&mid, &root, CertRole::EndEntity, false);
        assert_eq!(
            build_path(&our_cert, &[root_cert.clone(), leaf_mid], now).err(),
            Some(PathError::NotCa)
        );
        let expired_mid = certify(&mid, &root, CA, true);
        assert_eq!(
            build_path(&our_cert, &[root_cert, expired_mid], now).err(),
            Some(PathError::OutOfValidity)
        );
        // A signature by another key with the right name does not count.
        let impostor = ca("Mid");
        let impostor_cert = certify(&impostor, &impostor, CA, false);
        assert_eq!(
            build_path(&our_cert, &[impostor_cert], now).err(),
            Some(PathError::NoIssuer("CN=Ours".into()))
        );
    }
}
