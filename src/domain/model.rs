//! The domain's entities, named exactly as Graph beta names them
//! (`cloudCertificationAuthority`, `cloudCertificationAuthorityLeafCertificate`),
//! serialised in Graph's camelCase with Graph's enum member names.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use crate::x509::{HashAlgorithm, KeyAlgorithm};

pub const CA_ODATA_TYPE: &str = "#microsoft.graph.cloudCertificationAuthority";
pub const LEAF_ODATA_TYPE: &str = "#microsoft.graph.cloudCertificationAuthorityLeafCertificate";

/// `cloudCertificationAuthorityType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudCertificationAuthorityType")]
pub enum CaType {
    RootCertificationAuthority,
    IssuingCertificationAuthority,
    IssuingCertificationAuthorityWithExternalRoot,
}

impl CaType {
    pub const ALL: [CaType; 3] = [
        CaType::RootCertificationAuthority,
        CaType::IssuingCertificationAuthority,
        CaType::IssuingCertificationAuthorityWithExternalRoot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CaType::RootCertificationAuthority => "rootCertificationAuthority",
            CaType::IssuingCertificationAuthority => "issuingCertificationAuthority",
            CaType::IssuingCertificationAuthorityWithExternalRoot => "issuingCertificationAuthorityWithExternalRoot",
        }
    }

    pub fn is_issuing(self) -> bool {
        !matches!(self, CaType::RootCertificationAuthority)
    }
}

/// `cloudCertificationAuthorityStatus`. `expired` is never stored: it is
/// derived from the clock when a CA's certificate has passed its notAfter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudCertificationAuthorityStatus")]
pub enum CaStatus {
    Active,
    Paused,
    Revoked,
    SigningPending,
    Expired,
}

impl CaStatus {
    pub const ALL: [CaStatus; 5] = [
        CaStatus::Active,
        CaStatus::Paused,
        CaStatus::Revoked,
        CaStatus::SigningPending,
        CaStatus::Expired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CaStatus::Active => "active",
            CaStatus::Paused => "paused",
            CaStatus::Revoked => "revoked",
            CaStatus::SigningPending => "signingPending",
            CaStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.name().eq_ignore_ascii_case(s))
    }
}

/// `cloudCertificationAuthorityKeyPlatformType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudCertificationAuthorityKeyPlatformType")]
pub enum KeyPlatform {
    Software,
    HardwareSecurityModule,
}

/// `cloudCertificationAuthorityLeafCertificateStatus`; `expired` derived from the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudCertificationAuthorityLeafCertificateStatus")]
pub enum LeafStatus {
    Active,
    Revoked,
    Expired,
}

impl LeafStatus {
    pub fn name(self) -> &'static str {
        match self {
            LeafStatus::Active => "active",
            LeafStatus::Revoked => "revoked",
            LeafStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [LeafStatus::Active, LeafStatus::Revoked, LeafStatus::Expired]
            .into_iter()
            .find(|x| x.name().eq_ignore_ascii_case(s))
    }
}

pub use crate::x509::RevocationReason;

/// Graph's device platforms for leaves (`Unknown` by default).
pub const DEVICE_PLATFORMS: [&str; 12] = [
    "Unknown",
    "Android",
    "AndroidForWork",
    "iOS",
    "MacOS",
    "WindowsPhone81",
    "Windows81AndLater",
    "Windows10AndLater",
    "AndroidWorkProfile",
    "AndroidAOSP",
    "AndroidMobileApplicationManagement",
    "iOSMobileApplicationManagement",
];

/// Canonical spelling of a device platform name (case-insensitive match).
pub fn device_platform(s: &str) -> Option<&'static str> {
    DEVICE_PLATFORMS.into_iter().find(|p| p.eq_ignore_ascii_case(s))
}

/// Graph's `extendedKeyUsage` complex type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "extendedKeyUsage")]
pub struct ExtendedKeyUsage {
    pub name: String,
    pub object_identifier: String,
}

/// The `cloudCertificationAuthority` entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudCertificationAuthority")]
pub struct CertificationAuthority {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    pub id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub scep_server_url: Option<String>,
    pub certificate_revocation_list_url: Option<String>,
    pub certificate_download_url: Option<String>,
    pub certification_authority_issuer_uri: Option<String>,
    pub ocsp_responder_uri: Option<String>,
    pub certification_authority_status: CaStatus,
    pub e_tag: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub last_modified_date_time: Option<OffsetDateTime>,
    pub role_scope_tag_ids: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub created_date_time: Option<OffsetDateTime>,
    pub certification_authority_issuer_id: Option<String>,
    pub issuer_common_name: Option<String>,
    pub cloud_certification_authority_type: CaType,
    pub validity_period_in_years: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub validity_start_date_time: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub validity_end_date_time: Option<OffsetDateTime>,
    pub common_name: String,
    pub organization_name: Option<String>,
    pub organization_unit: Option<String>,
    pub country_name: Option<String>,
    pub state_name: Option<String>,
    pub locality_name: Option<String>,
    pub subject_name: String,
    pub certificate_key_size: KeyAlgorithm,
    pub cloud_certification_authority_hashing_algorithm: HashAlgorithm,
    pub thumbprint: Option<String>,
    pub serial_number: Option<String>,
    pub certificate_signing_request: Option<String>,
    pub extended_key_usages: Vec<ExtendedKeyUsage>,
    pub version_number: i32,
    pub root_certificate_common_name: Option<String>,
    pub key_platform: KeyPlatform,
    /// Extension: when the CA certificate was revoked (null unless revoked).
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub revocation_date_time: Option<OffsetDateTime>,
}

/// The `cloudCertificationAuthorityLeafCertificate` entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudCertificationAuthorityLeafCertificate")]
pub struct LeafCertificate {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    pub id: String,
    pub subject_name: String,
    pub issuer_id: String,
    pub issuer_name: String,
    pub certificate_status: LeafStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub validity_start_date_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub validity_end_date_time: OffsetDateTime,
    pub crl_distribution_point_url: Option<String>,
    pub certification_authority_issuer_uri: Option<String>,
    pub ocsp_responder_uri: Option<String>,
    pub thumbprint: String,
    pub serial_number: String,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub revocation_date_time: Option<OffsetDateTime>,
    /// Extension: the RFC 5280 reason given at revocation.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revocation_reason: Option<RevocationReason>,
    pub device_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub device_id: Option<String>,
    pub user_id: Option<String>,
    pub device_platform: String,
    pub key_usages: Vec<String>,
    pub extended_key_usages: Vec<String>,
}

/// Friendly names for well-known EKUs (Graph's `extendedKeyUsage.name`).
pub fn eku_name(oid: &str) -> &'static str {
    match oid {
        "1.3.6.1.5.5.7.3.1" => "Server Authentication",
        "1.3.6.1.5.5.7.3.2" => "Client Authentication",
        "1.3.6.1.5.5.7.3.3" => "Code Signing",
        "1.3.6.1.5.5.7.3.4" => "Secure Email",
        "1.3.6.1.5.5.7.3.5" => "IP Security End System",
        "1.3.6.1.5.5.7.3.6" => "IP Security Tunnel Termination",
        "1.3.6.1.5.5.7.3.7" => "IP Security User",
        "1.3.6.1.5.5.7.3.8" => "Time Stamping",
        "1.3.6.1.5.5.7.3.9" => "OCSP Signing",
        "1.3.6.1.4.1.311.20.2.2" => "Smart Card Logon",
        _ => "Custom",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_match_graph() {
        assert_eq!(
            serde_json::to_string(&CaStatus::SigningPending).unwrap(),
            "\"signingPending\""
        );
        assert_eq!(serde_json::to_string(&KeyAlgorithm::EcP256k).unwrap(), "\"eCP256k\"");
        assert_eq!(
            serde_json::to_string(&CaType::IssuingCertificationAuthorityWithExternalRoot).unwrap(),
            "\"issuingCertificationAuthorityWithExternalRoot\""
        );
        assert_eq!(
            serde_json::to_string(&RevocationReason::CaCompromise).unwrap(),
            "\"cACompromise\""
        );
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.name()));
        }
        for s in CaStatus::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.name()));
        }
    }
}
