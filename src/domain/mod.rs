//! The domain: certification authorities, leaf certificates, and the rules
//! that govern them.
//!
//! [`Pki`] is the only writer of state. Each operation gathers its facts, asks
//! [`lifecycle::check`] whether it is allowed, builds and signs what it must
//! through [`crate::x509`], and commits through [`crate::store`] in one
//! transaction, appending to the change log that readers follow.

pub mod audit;
pub mod engine;
pub mod error;
pub mod kek;
pub mod lifecycle;
pub mod model;

pub use crate::store::{LeafCursor, LeafOrder, SortKey};
pub use engine::{
    CaPatch, CrlBasis, CrlScope, EnrolOutcome, EnrolRefusal, EnrolRequest, Enrolled, EnrolmentRequestInfo,
    IssuedChallenge, LeafListQuery, LeafPageRequest, NewCa, NewChallenge, NewLeaf, NewProfile, Pki, Profile, ScepRa,
    ScepRas, Settings,
};
pub use error::PkiError;
pub use model::*;
