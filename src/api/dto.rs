//! The Graph entities the API shows (`cloudCertificationAuthority`,
//! `cloudCertificationAuthorityLeafCertificate`), in Graph's camelCase with
//! Graph's enum member names, built from the domain's records. They live
//! only here: a new Graph property needs no data migration, and the domain
//! and store know nothing of this shape.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::{eku_name, Ca, CaStatus, CaType, HashAlgorithm, KeyAlgorithm, KeyPlatform, Leaf, LeafStatus};
use crate::x509::RevocationReason;

pub const CA_ODATA_TYPE: &str = "#microsoft.graph.cloudCertificationAuthority";
pub const LEAF_ODATA_TYPE: &str = "#microsoft.graph.cloudCertificationAuthorityLeafCertificate";

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
    /// Extension: how many CRL partitions new leaves are spread over (0:
    /// every leaf names `certificateRevocationListUrl`). Only grows.
    #[serde(default)]
    pub crl_partition_count: u32,
    /// Extension: every CRL this CA serves, `current.crl` first (CCADB's
    /// partitioned-CRL list, also served as `crlPartitionsUrl`).
    #[serde(default)]
    pub crl_partition_urls: Vec<String>,
    /// Extension: the JSON array of `crlPartitionUrls`, for CCADB.
    #[serde(default)]
    pub crl_partitions_url: Option<String>,
    /// Extension: whether a delta CRL is published beside each CRL
    /// (`…/N-delta.crl`), named by new leaves' Freshest CRL extension.
    #[serde(default)]
    pub delta_crl_enabled: bool,
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

/// A domain record and the Graph entity it is shown as.
pub trait ToGraph {
    type Entity: Serialize;
    fn to_graph(&self) -> Self::Entity;
}

impl ToGraph for Ca {
    type Entity = CertificationAuthority;
    fn to_graph(&self) -> CertificationAuthority {
        self.into()
    }
}

impl ToGraph for Leaf {
    type Entity = LeafCertificate;
    fn to_graph(&self) -> LeafCertificate {
        self.into()
    }
}

impl From<&Ca> for CertificationAuthority {
    fn from(ca: &Ca) -> Self {
        CertificationAuthority {
            odata_type: CA_ODATA_TYPE.into(),
            id: ca.id.clone(),
            display_name: ca.display_name.clone(),
            description: ca.description.clone(),
            // Roots issue no leaves: nothing enrols with them.
            scep_server_url: (ca.ca_type != CaType::RootCertificationAuthority).then(|| ca.urls.scep.clone()),
            certificate_revocation_list_url: Some(ca.urls.crl.clone()),
            certificate_download_url: Some(ca.urls.certificate.clone()),
            certification_authority_issuer_uri: ca.issuer_cert_url.clone(),
            ocsp_responder_uri: Some(ca.urls.ocsp.clone()),
            certification_authority_status: ca.status,
            e_tag: Some(ca.etag()),
            last_modified_date_time: Some(ca.modified_at),
            role_scope_tag_ids: ca.scope_tags.clone(),
            created_date_time: Some(ca.created_at),
            certification_authority_issuer_id: ca.issuer_id.clone(),
            issuer_common_name: ca.issuer_common_name.clone(),
            cloud_certification_authority_type: ca.ca_type,
            validity_period_in_years: i32::try_from(ca.validity_years).unwrap_or(i32::MAX),
            validity_start_date_time: ca.version.not_before,
            validity_end_date_time: ca.version.not_after,
            common_name: ca.subject.common_name.clone(),
            organization_name: ca.subject.organization_name.clone(),
            organization_unit: ca.subject.organization_unit.clone(),
            country_name: ca.subject.country_name.clone(),
            state_name: ca.subject.state_name.clone(),
            locality_name: ca.subject.locality_name.clone(),
            subject_name: ca.subject_name.clone(),
            certificate_key_size: ca.key_algorithm,
            cloud_certification_authority_hashing_algorithm: ca.hash_algorithm,
            thumbprint: ca.version.thumbprint.clone(),
            serial_number: ca.version.serial.clone(),
            certificate_signing_request: ca
                .version
                .csr
                .as_deref()
                .map(<base64ct::Base64 as base64ct::Encoding>::encode_string),
            extended_key_usages: ca
                .ekus
                .iter()
                .map(|oid| ExtendedKeyUsage {
                    name: eku_name(oid).into(),
                    object_identifier: oid.clone(),
                })
                .collect(),
            version_number: i32::try_from(ca.version.number).unwrap_or(i32::MAX),
            root_certificate_common_name: ca.root_common_name.clone(),
            key_platform: ca.key_platform,
            revocation_date_time: ca.revoked_at,
            crl_partition_count: ca.crl_partitions,
            crl_partition_urls: ca.crl_urls(),
            crl_partitions_url: Some(ca.urls.partitions_json()),
            delta_crl_enabled: ca.delta_crls,
        }
    }
}

impl From<&Leaf> for LeafCertificate {
    fn from(l: &Leaf) -> Self {
        LeafCertificate {
            odata_type: LEAF_ODATA_TYPE.into(),
            id: l.id.clone(),
            subject_name: l.subject_name.clone(),
            issuer_id: l.ca_id.clone(),
            issuer_name: l.issuer_name.clone(),
            certificate_status: l.status,
            validity_start_date_time: l.not_before,
            validity_end_date_time: l.not_after,
            crl_distribution_point_url: Some(l.crl_url()),
            certification_authority_issuer_uri: Some(l.urls.certificate.clone()),
            ocsp_responder_uri: Some(l.urls.ocsp.clone()),
            thumbprint: l.thumbprint.clone(),
            serial_number: l.serial.clone(),
            revocation_date_time: l.revoked_at,
            revocation_reason: l.revocation_reason,
            device_name: l.device_name.clone(),
            user_principal_name: l.user_principal_name.clone(),
            device_id: l.device_id.clone(),
            user_id: l.user_id.clone(),
            device_platform: l.device_platform.clone(),
            key_usages: l.key_usages.clone(),
            extended_key_usages: l.ekus.clone(),
        }
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
