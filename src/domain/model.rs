//! The domain's records: a certification authority ([`Ca`], with its
//! certificate version [`CaVersion`]) and a leaf certificate ([`Leaf`]).
//! They are the single source of truth, stored column by column; the Graph
//! entities the API shows are built from them at the edge (`api::dto`).
//!
//! The enumerations carry Graph's member names (`name`/`parse`, and serde
//! for the edge), which are also the spelling the store keeps.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use crate::x509::names::SubjectParts;
pub use crate::x509::{HashAlgorithm, KeyAlgorithm};

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

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(s))
    }

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

impl KeyPlatform {
    pub fn name(self) -> &'static str {
        match self {
            KeyPlatform::Software => "software",
            KeyPlatform::HardwareSecurityModule => "hardwareSecurityModule",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [KeyPlatform::Software, KeyPlatform::HardwareSecurityModule]
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }
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

/// A certification authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ca {
    pub id: String,
    pub ca_type: CaType,
    pub display_name: String,
    pub description: Option<String>,
    /// Effective status when loaded: `Expired` once the certificate's
    /// notAfter has passed (never stored).
    pub status: CaStatus,
    /// The status as stored, which `Expired` hides.
    pub stored_status: CaStatus,
    /// The requested subject (the certificate's, for an external root).
    pub subject: SubjectParts,
    /// The certificate's subject as Graph prints it.
    pub subject_name: String,
    /// The cloudpki root an issuing CA is anchored to.
    pub issuer_id: Option<String>,
    pub issuer_common_name: Option<String>,
    pub root_common_name: Option<String>,
    /// Where this CA's issuer certificate is published (its AIA caIssuers).
    pub issuer_cert_url: Option<String>,
    pub key_algorithm: KeyAlgorithm,
    pub hash_algorithm: HashAlgorithm,
    pub key_platform: KeyPlatform,
    pub validity_years: u32,
    /// EKU OIDs, dotted.
    pub ekus: Vec<String>,
    pub scope_tags: Vec<String>,
    pub created_at: OffsetDateTime,
    pub modified_at: OffsetDateTime,
    pub version: CaVersion,
    pub revoked_at: Option<OffsetDateTime>,
    pub revocation_reason: Option<RevocationReason>,
    /// Bumped by every change: the basis of optimistic concurrency.
    pub row_version: i64,
    /// Where this CA's revocation data and certificate are published.
    pub urls: CaUrls,
    /// How many CRL partitions new leaves are spread over (0: none; every
    /// leaf names `current.crl`). Only grows: a leaf's partition is fixed.
    pub crl_partitions: u32,
    /// Whether it publishes delta CRLs beside each complete one (and its
    /// new leaves name them). Never turned off: certificates name them.
    pub delta_crls: bool,
}

impl Ca {
    /// The opaque tag `If-Match` compares against.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.row_version)
    }

    /// Every CRL URL this CA serves, `current.crl` first: CCADB's
    /// partitioned-CRL list, served as `partitions.json`. A root has one CRL.
    pub fn crl_urls(&self) -> Vec<String> {
        (0..=self.crl_partitions).map(|p| self.urls.crl_partition(p)).collect()
    }
}

/// The current CA certificate (CA renewal adds versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaVersion {
    pub number: u32,
    /// None while an external signature is pending.
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    /// Uppercase hex SHA-1 of the certificate.
    pub thumbprint: Option<String>,
    pub serial: Option<String>,
    /// DER PKCS#10, while an external signature is pending.
    pub csr: Option<Vec<u8>>,
}

/// Published locations of a CA version's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaUrls {
    /// `…/crls/{caId}_v{version}/current.crl`: partition 0.
    pub crl: String,
    /// `…/crls/{caId}_v{version}/`: where the partitions sit.
    pub crl_dir: String,
    pub certificate: String,
    pub ocsp: String,
    /// `…/scep/{caId}`: where devices enrol (issuing CAs only answer there).
    pub scep: String,
}

impl CaUrls {
    /// The URL of one CRL partition (0: `current.crl`).
    pub fn crl_partition(&self, partition: u32) -> String {
        match partition {
            0 => self.crl.clone(),
            p => format!("{}{p}.crl", self.crl_dir),
        }
    }

    /// The URL of one partition's delta CRL (`current-delta.crl`, `N-delta.crl`).
    pub fn delta_crl(&self, partition: u32) -> String {
        match partition {
            0 => format!("{}current-delta.crl", self.crl_dir),
            p => format!("{}{p}-delta.crl", self.crl_dir),
        }
    }

    /// The JSON array of every partition URL (CCADB's format).
    pub fn partitions_json(&self) -> String {
        format!("{}partitions.json", self.crl_dir)
    }
}

/// Partitions a new issuing CA spreads its leaves over, unless told: at a
/// million certificates a partition lists at most ~62k entries (3 MB even if
/// every one is revoked), and one revocation re-signs a sixteenth.
pub const DEFAULT_CRL_PARTITIONS: u32 = 16;
/// The most partitions a CA may have.
pub const MAX_CRL_PARTITIONS: u32 = 1024;

/// A new leaf's CRL partition, from its serial: the serial is random, so
/// partitions fill evenly; the result is stored with the leaf and never
/// recomputed (raising the count later moves no existing leaf).
pub fn crl_partition_of(serial: &[u8], partitions: u32) -> u32 {
    if partitions == 0 {
        return 0;
    }
    let mut low = [0u8; 8];
    let tail = &serial[serial.len().saturating_sub(8)..];
    low[8 - tail.len()..].copy_from_slice(tail);
    1 + (u64::from_be_bytes(low) % u64::from(partitions)) as u32
}

/// A leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub id: String,
    pub ca_id: String,
    /// The CA version that signed it.
    pub ca_version: u32,
    pub serial: String,
    pub subject_name: String,
    pub issuer_name: String,
    /// Effective status when loaded (derived from revocation and the clock).
    pub status: LeafStatus,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub thumbprint: String,
    pub revoked_at: Option<OffsetDateTime>,
    pub revocation_reason: Option<RevocationReason>,
    pub device_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub device_id: Option<String>,
    pub user_id: Option<String>,
    pub device_platform: String,
    /// keyUsage bit names.
    pub key_usages: Vec<String>,
    /// EKU OIDs, dotted.
    pub ekus: Vec<String>,
    /// What the certificate points relying parties at (its issuer's URLs).
    pub urls: CaUrls,
    /// The CRL partition its certificate names (0: `current.crl`).
    pub crl_partition: u32,
}

impl Leaf {
    /// The CRL URL in the certificate's CRL Distribution Points.
    pub fn crl_url(&self) -> String {
        self.urls.crl_partition(self.crl_partition)
    }
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
    fn partitions_come_from_the_serial_and_spread_evenly() {
        assert_eq!(crl_partition_of(&[1, 2, 3], 0), 0);
        assert_eq!(crl_partition_of(&[0x12; 16], 1), 1);
        let mut counts = [0u32; 17];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..16_000 {
            // xorshift: stands in for the random serials.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let serial = [&[0x55u8; 8][..], &x.to_be_bytes()[..]].concat();
            let p = crl_partition_of(&serial, 16);
            assert!((1..=16).contains(&p));
            counts[p as usize] += 1;
        }
        assert!(counts[1..].iter().all(|&c| c > 800), "{counts:?}");
        // A short serial is read as its value.
        assert_eq!(crl_partition_of(&[5], 4), 2);
    }

    #[test]
    fn partition_urls() {
        let urls = CaUrls {
            crl: "http://x/crls/a_v1/current.crl".into(),
            crl_dir: "http://x/crls/a_v1/".into(),
            certificate: String::new(),
            ocsp: String::new(),
            scep: String::new(),
        };
        assert_eq!(urls.crl_partition(0), "http://x/crls/a_v1/current.crl");
        assert_eq!(urls.crl_partition(7), "http://x/crls/a_v1/7.crl");
        assert_eq!(urls.delta_crl(0), "http://x/crls/a_v1/current-delta.crl");
        assert_eq!(urls.delta_crl(7), "http://x/crls/a_v1/7-delta.crl");
        assert_eq!(urls.partitions_json(), "http://x/crls/a_v1/partitions.json");
    }

    #[test]
    fn names_round_trip() {
        for t in CaType::ALL {
            assert_eq!(CaType::parse(t.name()), Some(t));
        }
        for s in CaStatus::ALL {
            assert_eq!(CaStatus::parse(s.name()), Some(s));
        }
        for p in [KeyPlatform::Software, KeyPlatform::HardwareSecurityModule] {
            assert_eq!(KeyPlatform::parse(p.name()), Some(p));
        }
        for s in [LeafStatus::Active, LeafStatus::Revoked, LeafStatus::Expired] {
            assert_eq!(LeafStatus::parse(s.name()), Some(s));
        }
    }
}
