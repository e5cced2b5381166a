//! The revocation reason: one type for CRL entries, OCSP answers, the store
//! and the API, and the one mapping to RFC 5280's CRLReason.

use serde::{Deserialize, Serialize};
use x509_cert::ext::pkix::crl::CrlReason;

/// RFC 5280 §5.3.1 CRLReason, minus `certificateHold` and `removeFromCRL`:
/// revocation in Cloud PKI is irreversible, so a hold is never issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudPkiRevocationReason")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    #[serde(rename = "cACompromise")]
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    PrivilegeWithdrawn,
    #[serde(rename = "aACompromise")]
    AaCompromise,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 8] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise,
    ];

    /// The CRLReason enumeration value.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::PrivilegeWithdrawn => 9,
            RevocationReason::AaCompromise => 10,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "cACompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
            RevocationReason::AaCompromise => "aACompromise",
        }
    }

    /// The `reasonCode` to encode, None for `unspecified`: RFC 5280 §5.3.1
    /// says the extension SHOULD then be absent (CRL entries and OCSP alike).
    pub fn crl_reason(self) -> Option<CrlReason> {
        Some(match self {
            RevocationReason::Unspecified => return None,
            RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
            RevocationReason::CaCompromise => CrlReason::CaCompromise,
            RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
            RevocationReason::Superseded => CrlReason::Superseded,
            RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
            RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
            RevocationReason::AaCompromise => CrlReason::AaCompromise,
        })
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name().eq_ignore_ascii_case(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_crl_and_ocsp_agree() {
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
            assert_eq!(RevocationReason::parse(r.name()), Some(r));
            match r.crl_reason() {
                None => assert_eq!(r, RevocationReason::Unspecified),
                Some(c) => assert_eq!(c as u8, r.code(), "{r:?}"),
            }
        }
        // Never issued: certificateHold (6), removeFromCRL (8); 7 is unused.
        for code in [6, 7, 8, 11, 255] {
            assert_eq!(RevocationReason::from_code(code), None);
        }
    }
}
