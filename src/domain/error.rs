//! The domain's error type: what went wrong, in terms an operator (or the
//! Graph error mapping in the API layer) can act on.

use crate::secrets::SecretError;
use crate::store::StoreError;
use crate::x509::X509Error;

use super::lifecycle::Refusal;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// A lifecycle rule forbids the action (Graph: 409 Conflict).
    #[error("{0}")]
    Lifecycle(#[from] Refusal),
    /// The request itself is invalid (Graph: 400).
    #[error("{0}")]
    Invalid(String),
    #[error("a certification authority with commonName {0:?} already exists")]
    DuplicateCommonName(String),
    #[error("the limit of {0} certification authorities is reached")]
    CaLimitReached(u32),
    #[error("leaf certificate {0} is already revoked")]
    AlreadyRevoked(String),
    #[error("serial number {0} matches leaves of several CAs: name the CA")]
    AmbiguousSerial(String),
    /// A CSR or uploaded certificate failed verification (Graph: 400).
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("the entity changed since it was read (eTag mismatch)")]
    PreconditionFailed,
    /// A KEK rotation refused or a process without the KEK it needs.
    #[error("{0}")]
    Kek(String),
    #[error(transparent)]
    X509(#[from] X509Error),
    /// A signed CRL failed its check before publication: it is neither
    /// stored nor served (the previous one stays).
    #[error("a CRL failed its check before publication: {0}")]
    CrlCheck(#[from] crate::x509::crl::CrlCheckError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A device's enrolment request was refused (SCEP: a CertRep FAILURE).
    #[error("enrolment refused: {0}")]
    Enrolment(#[from] super::engine::EnrolRefusal),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for PkiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateCommonName(cn) => PkiError::DuplicateCommonName(cn),
            StoreError::Conflict => PkiError::PreconditionFailed,
            other => PkiError::Store(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, PkiError>;
