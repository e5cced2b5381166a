//! The JSON request bodies the API reads, named as Graph names their
//! properties; `openapi.rs` generates their schemas from these types, so the
//! document describes what is parsed. Also reading a body ([`body`]) and the
//! length limits of free text.

use http::header;
use serde::Deserialize;

use super::error::ApiError;
use super::ApiRequest;
use crate::domain::{CaType, KeyPlatform, NewCa};
use crate::x509::names::SubjectParts;

/// Longest displayName accepted (Intune's console limit is far lower; this
/// bounds what a caller can make us store and echo).
pub const MAX_DISPLAY_NAME: usize = 256;
/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 1024;

pub(super) fn check_length(property: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if v.chars().count() > max => Err(ApiError::bad_request(format!(
            "{property} is longer than {max} characters"
        ))),
        _ => Ok(()),
    }
}

/// The Graph create body: read-only properties in it are ignored.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateCaBody {
    pub(super) display_name: Option<String>,
    pub(super) description: Option<String>,
    #[schemars(required)]
    cloud_certification_authority_type: Option<CaType>,
    certification_authority_issuer_id: Option<String>,
    validity_period_in_years: Option<i64>,
    #[schemars(required)]
    common_name: Option<String>,
    organization_name: Option<String>,
    organization_unit: Option<String>,
    country_name: Option<String>,
    state_name: Option<String>,
    locality_name: Option<String>,
    certificate_key_size: Option<crate::x509::KeyAlgorithm>,
    cloud_certification_authority_hashing_algorithm: Option<crate::x509::HashAlgorithm>,
    #[serde(default)]
    extended_key_usages: Vec<EkuBody>,
    #[serde(default)]
    role_scope_tag_ids: Vec<String>,
    /// `software` only: `hardwareSecurityModule` is refused (400) until CA
    /// keys can live in an HSM, rather than quietly made in software.
    #[schemars(schema_with = "software_key_platform")]
    key_platform: Option<crate::domain::KeyPlatform>,
    /// Extension: CRL partitions for the leaves of an issuing CA (default
    /// 16; 0: one `current.crl`).
    crl_partition_count: Option<u32>,
    /// Extension: publish delta CRLs, named by the leaves' Freshest CRL
    /// extension (default false).
    delta_crl_enabled: Option<bool>,
}

/// The key platforms a create accepts (the OpenAPI document says only what works).
fn software_key_platform(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["string", "null"],
        "enum": ["software", null],
        "description": "software only; hardwareSecurityModule is refused (400) until HSM-held keys are supported"
    })
}

impl CreateCaBody {
    /// The scope tags asked for; Graph's default tag `0` when none.
    /// The requested scope tags: the docs' placeholder is no tag, and no
    /// tag is the default tag 0.
    pub(super) fn scope_tags(&self) -> Vec<String> {
        let tags = without_placeholders(&self.role_scope_tag_ids);
        if tags.is_empty() {
            vec!["0".to_owned()]
        } else {
            tags
        }
    }

    /// The domain's request, with Graph's defaults and placeholders applied
    /// (the one translation, shared by the handler and the fuzz target).
    pub(super) fn into_new_ca(self) -> Result<NewCa, ApiError> {
        if self.key_platform == Some(KeyPlatform::HardwareSecurityModule) {
            return Err(ApiError::bad_request(
                "keyPlatform hardwareSecurityModule is not supported: CA keys are software keys sealed with the \
                 key-encryption key (send software, or omit keyPlatform)",
            ));
        }
        let tags = self.scope_tags();
        let b = self;
        let ca_type = b
            .cloud_certification_authority_type
            .ok_or_else(|| ApiError::bad_request("cloudCertificationAuthorityType is required"))?;
        let common_name = b
            .common_name
            .ok_or_else(|| ApiError::bad_request("commonName is required"))?;
        let years = b
            .validity_period_in_years
            .unwrap_or(if ca_type == CaType::RootCertificationAuthority {
                10
            } else {
                4
            });
        Ok(NewCa {
            ca_type,
            display_name: b.display_name,
            description: b.description,
            subject: SubjectParts {
                common_name,
                organization_name: b.organization_name.filter(|s| !s.is_empty()),
                organization_unit: b.organization_unit.filter(|s| !s.is_empty()),
                country_name: b.country_name.filter(|s| !s.is_empty() && !graph_placeholder(s)),
                state_name: b.state_name.filter(|s| !s.is_empty()),
                locality_name: b.locality_name.filter(|s| !s.is_empty()),
            },
            // A root has no issuer: the property is read-only there (the seed's example sets it).
            issuer_id: b
                .certification_authority_issuer_id
                .filter(|s| !s.is_empty() && ca_type != CaType::RootCertificationAuthority),
            key_size: b.certificate_key_size.unwrap_or(crate::x509::KeyAlgorithm::Rsa2048),
            hash: b
                .cloud_certification_authority_hashing_algorithm
                .unwrap_or(crate::x509::HashAlgorithm::Sha256),
            validity_years: u32::try_from(years)
                .map_err(|_| ApiError::bad_request("validityPeriodInYears must be positive"))?,
            ekus: b
                .extended_key_usages
                .into_iter()
                .map(|e| e.object_identifier)
                .filter(|oid| !graph_placeholder(oid))
                .collect(),
            role_scope_tag_ids: tags,
            crl_partitions: b.crl_partition_count,
            delta_crls: b.delta_crl_enabled.unwrap_or(false),
        })
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct EkuBody {
    object_identifier: String,
}

/// Graph's documentation fills examples with placeholders ("Country Name value").
/// Sent as is, such a placeholder is taken as absent in the fields where no
/// valid value ends that way (country codes, OIDs, the platform enumeration);
/// any other invalid value is still refused.
pub(super) fn graph_placeholder(value: &str) -> bool {
    value.ends_with(" value")
}

/// Scope tag ids without the docs' placeholder ("Role Scope Tag Ids value"):
/// no real id contains a space (the domain refuses one).
pub(super) fn without_placeholders(tags: &[String]) -> Vec<String> {
    tags.iter().filter(|t| !graph_placeholder(t)).cloned().collect()
}

pub(super) fn body<T: serde::de::DeserializeOwned>(req: &ApiRequest<'_>) -> Result<T, ApiError> {
    let ctype = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !req.body.is_empty() && !ctype.to_ascii_lowercase().starts_with("application/json") {
        return Err(ApiError::unsupported_media_type());
    }
    let raw: &[u8] = if req.body.is_empty() { b"{}" } else { &req.body };
    serde_json::from_slice(raw).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// What PATCH may change; other (read-only) properties are ignored.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PatchCaBody {
    pub(super) display_name: Option<String>,
    /// Absent: unchanged; null: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<String>")]
    pub(super) description: Option<Option<String>>,
    pub(super) role_scope_tag_ids: Option<Vec<String>>,
    /// Extension: more CRL partitions for new leaves (never fewer).
    pub(super) crl_partition_count: Option<u32>,
    /// Extension: start publishing delta CRLs (never stopped).
    pub(super) delta_crl_enabled: Option<bool>,
}

/// Tells a present `null` (Some(None)) from an absent field (None, by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatusBody {
    #[schemars(required)]
    pub(super) certification_authority_status: Option<String>,
    #[allow(dead_code)]
    certification_authority_version: Option<i64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct VersionBody {
    #[allow(dead_code)]
    certification_authority_version: Option<i64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "trustChainCertificate")]
pub(super) struct TrustChainCertificate {
    #[allow(dead_code)]
    display_name: Option<String>,
    pub(super) certificate: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct UploadBody {
    pub(super) signed_certificate: Option<String>,
    #[serde(default)]
    pub(super) trust_chain_certificates: Vec<TrustChainCertificate>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct RevokeLeafBody {
    #[schemars(required)]
    pub(super) leaf_certificate_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SerialBody {
    #[schemars(required)]
    certificate_serial_number: Option<String>,
}

impl SerialBody {
    pub(super) fn serial(self) -> Result<String, ApiError> {
        self.certificate_serial_number
            .ok_or_else(|| ApiError::bad_request("certificateSerialNumber is required"))
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReasonBody {
    pub(super) reason: Option<String>,
}

/// PATCH on a leaf: Graph marks every leaf property read-only (device and
/// user are recorded at issuance), so whatever the body holds is ignored and
/// the leaf is answered unchanged. Kept for Graph clients and its examples.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub(super) struct PatchLeafBody {}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct LeafMetaBody {
    pub(super) device_name: Option<String>,
    pub(super) user_principal_name: Option<String>,
    pub(super) device_id: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) device_platform: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct IssueBody {
    #[schemars(required)]
    pub(super) certificate_signing_request: Option<String>,
    pub(super) validity_in_days: Option<u32>,
    #[serde(flatten)]
    pub(super) meta: LeafMetaBody,
}
