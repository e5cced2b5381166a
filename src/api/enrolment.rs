//! Enrolment profiles and challenges under an issuing CA (cloudpki
//! extensions in Graph's style): what devices may get by SCEP, and the
//! secrets that authorise their requests. Managing them takes the Cloud PKI
//! permission "Manage enrolment profiles and challenges" (Intune
//! Administrator holds it) on a scope tag of the CA.

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::bodies::body;
use super::error::ApiError;
use super::{empty_ok, json_response, Api, ApiRequest, Body};
use crate::auth::{Access, CloudPkiPermission as P};
use crate::domain::audit as enrolment_audit;
use crate::domain::{EnrolmentRequestInfo, NewChallenge, NewProfile, Profile};

const PROFILE_T: &str = "EnrolmentProfile";

/// An enrolment profile as the API shows it.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudPkiEnrolmentProfile")]
pub(super) struct EnrolmentProfile {
    id: String,
    certification_authority_id: String,
    display_name: String,
    /// Key types a request may use (Graph's key size names: rsa2048, eCP256, ...).
    key_types: Vec<String>,
    /// The request's common name must end with one of these (empty: any).
    common_name_suffixes: Vec<String>,
    /// DNS names in subjectAltName must end with one of these (empty: none allowed).
    dns_name_suffixes: Vec<String>,
    extended_key_usages: Vec<String>,
    validity_in_days: u32,
    /// Renewals are accepted this many days before expiry.
    renewal_window_in_days: u32,
    /// First enrolments wait for an administrator's approval.
    requires_approval: bool,
    /// Key usages of issued certificates (empty: by key type).
    key_usages: Vec<String>,
    created_date_time: String,
    /// Where devices enrol.
    scep_server_url: String,
}

impl EnrolmentProfile {
    fn of(p: &Profile, scep_url: &str) -> Self {
        EnrolmentProfile {
            id: p.id.clone(),
            certification_authority_id: p.ca_id.clone(),
            display_name: p.name.clone(),
            key_types: p.key_types.iter().map(|k| k.name().to_owned()).collect(),
            common_name_suffixes: p.cn_suffixes.clone(),
            dns_name_suffixes: p.dns_suffixes.clone(),
            extended_key_usages: p.ekus.iter().map(ToString::to_string).collect(),
            validity_in_days: p.validity_days,
            renewal_window_in_days: p.renewal_days,
            requires_approval: p.requires_approval,
            key_usages: p.key_usages.clone(),
            created_date_time: rfc3339(p.created_at),
            scep_server_url: scep_url.to_owned(),
        }
    }
}

/// A new challenge: the secret appears in this answer only.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudPkiEnrolmentChallenge")]
pub(super) struct EnrolmentChallenge {
    id: String,
    profile_id: String,
    /// The secret a device puts in its request (SCEP challengePassword).
    /// Shown once; only its SHA-256 is stored.
    challenge: String,
    uses: u32,
    expiration_date_time: String,
}

/// A device's request under a profile that requires approval.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudPkiEnrolmentRequest")]
pub(super) struct EnrolmentRequest {
    id: String,
    certification_authority_id: String,
    /// The protocol's transaction (SCEP transactionID; EST: the request's SHA-256).
    transaction_id: String,
    profile_id: String,
    common_name: Option<String>,
    device_id: Option<String>,
    requested_date_time: String,
    /// pending, issued or rejected.
    status: String,
    decided_date_time: Option<String>,
    decided_by: Option<String>,
    /// The issued leaf certificate, once approved.
    leaf_certificate_id: Option<String>,
    reason: Option<String>,
}

impl From<&EnrolmentRequestInfo> for EnrolmentRequest {
    fn from(r: &EnrolmentRequestInfo) -> Self {
        EnrolmentRequest {
            id: r.id.clone(),
            certification_authority_id: r.ca_id.clone(),
            transaction_id: r.transaction_id.clone(),
            profile_id: r.profile_id.clone(),
            common_name: r.common_name.clone(),
            device_id: r.device_id.clone(),
            requested_date_time: rfc3339(r.requested_at),
            status: r.state.clone(),
            decided_date_time: r.decided_at.map(rfc3339),
            decided_by: r.decided_by.clone(),
            leaf_certificate_id: r.leaf_id.clone(),
            reason: r.reason.clone(),
        }
    }
}

/// Approving or rejecting a request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DecisionBody {
    /// Recorded with the decision (and told to the device on a rejection).
    reason: Option<String>,
}

/// Creating a profile.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ProfileBody {
    display_name: Option<String>,
    /// Default: the RSA sizes no stronger than the CA's key.
    #[serde(default)]
    key_types: Vec<String>,
    #[serde(default)]
    common_name_suffixes: Vec<String>,
    #[serde(default)]
    dns_name_suffixes: Vec<String>,
    /// Default: the CA's EKUs.
    #[serde(default)]
    extended_key_usages: Vec<String>,
    /// Default 365.
    validity_in_days: Option<u32>,
    /// Default 30.
    renewal_window_in_days: Option<u32>,
    /// First enrolments wait for an administrator's approval (default false).
    #[serde(default)]
    requires_approval: bool,
    /// Key usages of issued certificates (DigitalSignature, NonRepudiation,
    /// KeyEncipherment, DataEncipherment, KeyAgreement); default: by key type.
    #[serde(default)]
    key_usages: Vec<String>,
}

/// Creating a challenge.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ChallengeBody {
    /// Default 1 (one-time).
    uses: Option<u32>,
    /// Default 86400 (a day); at most 90 days.
    validity_in_seconds: Option<u64>,
    /// Recorded as the issued leaf's deviceId.
    device_id: Option<String>,
    /// The common name a request must carry.
    subject_common_name: Option<String>,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

impl Api {
    pub(super) async fn list_profiles(&self, access: &Access, ca_id: &str) -> Result<Response<Body>, ApiError> {
        let ca = self.visible_ca(access, ca_id, &[P::ReadCas]).await?;
        let id = ca_id.to_owned();
        let profiles = self.blocking(access, move |p| p.profiles(Some(&id))).await?;
        let value: Vec<EnrolmentProfile> = profiles
            .iter()
            .map(|p| EnrolmentProfile::of(p, &ca.urls.scep))
            .collect();
        Ok(json_response(StatusCode::OK, &json!({ "value": value })))
    }

    pub(super) async fn create_profile(
        &self,
        req: &ApiRequest<'_>,
        access: &Access,
        ca_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let ca = self
            .visible_ca(access, ca_id, &[P::ReadCas, P::ManageEnrolment])
            .await?;
        let b: ProfileBody = body(req)?;
        let key_types = b
            .key_types
            .iter()
            .map(|k| {
                crate::x509::KeyAlgorithm::parse(k)
                    .ok_or_else(|| ApiError::bad_request(format!("unknown key type {k:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ekus = b
            .extended_key_usages
            .iter()
            .map(|e| {
                der::asn1::ObjectIdentifier::new(e).map_err(|_| ApiError::bad_request(format!("{e:?} is not an OID")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let new = NewProfile {
            ca_id: ca_id.to_owned(),
            name: b
                .display_name
                .ok_or_else(|| ApiError::bad_request("displayName is required"))?,
            key_types,
            cn_suffixes: b.common_name_suffixes,
            dns_suffixes: b.dns_name_suffixes,
            ekus,
            validity_days: b.validity_in_days.unwrap_or(365),
            renewal_days: b.renewal_window_in_days.unwrap_or(30),
            requires_approval: b.requires_approval,
            key_usages: b.key_usages,
        };
        let profile = self
            .mutate(
                access,
                enrolment_audit::CREATE_PROFILE,
                (PROFILE_T, "-"),
                (ca_id, &ca.scope_tags),
                move |p| p.create_profile(&new),
            )
            .await?;
        Ok(json_response(
            StatusCode::CREATED,
            &serde_json::to_value(EnrolmentProfile::of(&profile, &ca.urls.scep))
                .map_err(|e| ApiError::internal(e.to_string()))?,
        ))
    }

    /// The profile `profile_id` of CA `ca_id`, for a caller allowed `perms` on the CA.
    async fn visible_profile(
        &self,
        access: &Access,
        ca_id: &str,
        profile_id: &str,
        perms: &[P],
    ) -> Result<(crate::domain::Ca, Profile), ApiError> {
        let ca = self.visible_ca(access, ca_id, perms).await?;
        let id = profile_id.to_owned();
        let profile = self.blocking(access, move |p| p.profile(&id)).await?;
        if profile.ca_id != ca.id {
            return Err(ApiError::not_found(format!("enrolment profile {profile_id} not found")));
        }
        Ok((ca, profile))
    }

    pub(super) async fn delete_profile(
        &self,
        access: &Access,
        ca_id: &str,
        profile_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let (ca, profile) = self
            .visible_profile(access, ca_id, profile_id, &[P::ReadCas, P::ManageEnrolment])
            .await?;
        self.mutate(
            access,
            enrolment_audit::REMOVE_PROFILE,
            (PROFILE_T, profile_id),
            (ca_id, &ca.scope_tags),
            move |p| p.remove_profile(&profile.id),
        )
        .await?;
        Ok(empty_ok())
    }

    pub(super) async fn create_challenge(
        &self,
        req: &ApiRequest<'_>,
        access: &Access,
        ca_id: &str,
        profile_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let (ca, profile) = self
            .visible_profile(access, ca_id, profile_id, &[P::ReadCas, P::ManageEnrolment])
            .await?;
        let b: ChallengeBody = body(req)?;
        let new = NewChallenge {
            profile_id: profile.id,
            uses: b.uses.unwrap_or(1),
            valid_for: std::time::Duration::from_secs(b.validity_in_seconds.unwrap_or(86_400)),
            device_id: b.device_id,
            subject: b.subject_common_name,
        };
        let c = self
            .mutate(
                access,
                enrolment_audit::CREATE_CHALLENGE,
                (PROFILE_T, profile_id),
                (ca_id, &ca.scope_tags),
                move |p| p.create_challenge(&new),
            )
            .await?;
        let value: Value = serde_json::to_value(EnrolmentChallenge {
            id: c.id,
            profile_id: c.profile_id,
            challenge: c.secret,
            uses: c.uses,
            expiration_date_time: rfc3339(c.expires_at),
        })
        .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(json_response(StatusCode::CREATED, &value))
    }

    pub(super) async fn list_enrolment_requests(
        &self,
        access: &Access,
        ca_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        self.visible_ca(access, ca_id, &[P::ReadCas]).await?;
        let id = ca_id.to_owned();
        let rows = self.blocking(access, move |p| p.enrolment_requests(&id)).await?;
        let value: Vec<EnrolmentRequest> = rows.iter().map(EnrolmentRequest::from).collect();
        Ok(json_response(StatusCode::OK, &json!({ "value": value })))
    }

    pub(super) async fn decide_enrolment_request(
        &self,
        req: &ApiRequest<'_>,
        access: &Access,
        ca_id: &str,
        request_id: &str,
        approve: bool,
    ) -> Result<Response<Body>, ApiError> {
        let ca = self
            .visible_ca(access, ca_id, &[P::ReadCas, P::ManageEnrolment])
            .await?;
        let b: DecisionBody = body(req)?;
        if b.reason.as_ref().is_some_and(|r| r.len() > 1024) {
            return Err(ApiError::bad_request("reason is at most 1024 characters"));
        }
        let (id, rid) = (ca_id.to_owned(), request_id.to_owned());
        let decided = self
            .mutate(
                access,
                enrolment_audit::ENROL,
                ("EnrolmentRequest", request_id),
                (ca_id, &ca.scope_tags),
                move |p| p.decide_enrolment(&id, &rid, approve, b.reason),
            )
            .await?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(EnrolmentRequest::from(&decided)).map_err(|e| ApiError::internal(e.to_string()))?,
        ))
    }
}
