//! The tenant-wide operations outside the CA tree: `auditEvents` (read by
//! the caller's scope tags) and the API tokens (Intune Administrator only).

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::error::ApiError;
use super::query::{parse_query, seq_token, PAGE_SIZE};
use super::{empty_ok, json_response, Api, ApiRequest, Body, BASE};
use crate::auth::{Access, CloudPkiPermission as P, RbacError};
use crate::domain::audit;

fn rbac_error(e: RbacError) -> ApiError {
    match e {
        RbacError::BadTokenId => ApiError::bad_request(e.to_string()),
        RbacError::Store(crate::store::StoreError::Unavailable(_)) => ApiError::unavailable(),
        RbacError::Store(crate::store::StoreError::Busy) => ApiError::busy(),
        other => ApiError::internal(other),
    }
}

/// An API token as listed (never the token itself).
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "cloudPkiApiToken")]
pub(super) struct ApiToken {
    /// The token's `jti`.
    id: String,
    principal: String,
    issued_date_time: Option<String>,
    expiration_date_time: Option<String>,
    /// Graph permissions it carries, space-separated.
    permissions: String,
    revoked_date_time: Option<String>,
    revoked_by: Option<String>,
}

fn rfc3339(unix: i64) -> Option<String> {
    (unix != 0)
        .then(|| time::OffsetDateTime::from_unix_timestamp(unix).ok())
        .flatten()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
}

impl From<&crate::store::TokenRow> for ApiToken {
    fn from(t: &crate::store::TokenRow) -> Self {
        ApiToken {
            id: t.jti.clone(),
            principal: t.principal.clone(),
            issued_date_time: rfc3339(t.issued_at),
            expiration_date_time: rfc3339(t.expires_at),
            permissions: t.permissions.clone(),
            revoked_date_time: t.revoked_at.and_then(rfc3339),
            revoked_by: t.revoked_by.clone(),
        }
    }
}

impl Api {
    /// Only the Intune Administrator manages API tokens.
    fn token_admin(access: &Access) -> Result<(), ApiError> {
        if access.administrator {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "managing API tokens requires the Intune Administrator role",
            ))
        }
    }

    pub(super) async fn list_tokens(&self, access: &Access) -> Result<Response<Body>, ApiError> {
        Self::token_admin(access)?;
        let pki = self.pki.clone();
        let rows = tokio::task::spawn_blocking(move || crate::auth::list_tokens(&pki))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(rbac_error)?;
        let value: Vec<ApiToken> = rows.iter().map(ApiToken::from).collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "@odata.context": self.context("deviceManagement/cloudPkiApiTokens"),
                "value": value,
            }),
        ))
    }

    pub(super) async fn revoke_token(&self, access: &Access, jti: &str) -> Result<Response<Body>, ApiError> {
        Self::token_admin(access)?;
        let (pki, jti, by) = (self.pki.clone(), jti.to_owned(), access.claims.sub.clone());
        tokio::task::spawn_blocking(move || crate::auth::revoke_token(&pki, &jti, &by))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(rbac_error)?;
        Ok(empty_ok())
    }

    pub(super) async fn audit_events(&self, req: &ApiRequest<'_>, access: &Access) -> Result<Response<Body>, ApiError> {
        if !access.holds(P::ReadCas) {
            return Err(ApiError::forbidden("requires the Cloud PKI permission: Read CAs"));
        }
        let q = parse_query(req.query)?;
        if q.filter.is_some() || q.orderby.is_some() || q.select.is_some() || q.skip.is_some() {
            return Err(ApiError::bad_request(
                "auditEvents supports $filter=activityType eq '…', $top and paging only",
            ));
        }
        let limit = q.top.unwrap_or(PAGE_SIZE) as usize;
        // Events are read by scope: those about CAs whose tags the caller
        // cannot read are skipped (administrators read them all).
        let mut after = seq_token(q.skiptoken.as_deref())?;
        let mut rows = Vec::new();
        let mut more = false;
        'scan: loop {
            let activity = q.filter_activity.clone();
            let batch = self
                .blocking(access, move |p| p.audit_events(activity.as_deref(), after, 1000))
                .await?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                if !access.sees(&e.scope_tags) {
                    after = e.seq;
                    continue;
                }
                if rows.len() == limit {
                    more = true;
                    break 'scan;
                }
                after = e.seq;
                rows.push(e);
            }
        }
        let rows = &rows[..];
        let value: Vec<Value> = rows
            .iter()
            .map(|e| {
                let at = time::OffsetDateTime::from_unix_timestamp(e.at)
                    .ok()
                    .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
                let operation = match e.activity.split(' ').next().unwrap_or("") {
                    "Create" => "Create",
                    "Patch" => "Patch",
                    "Delete" => "Delete",
                    _ => "Action",
                };
                json!({
                    "@odata.type": "#microsoft.graph.auditEvent",
                    "id": e.seq.to_string(),
                    "displayName": e.activity,
                    "componentName": "CloudPKI",
                    "category": "CloudPKI",
                    "activityType": e.activity,
                    "activityOperationType": operation,
                    "activityDateTime": at,
                    "activityResult": e.result,
                    "actor": {"@odata.type": "microsoft.graph.auditActor", "userPrincipalName": e.actor, "type": "user"},
                    "resources": [{"@odata.type": "microsoft.graph.auditResource", "resourceId": e.target_id, "type": e.target_type, "displayName": e.target_id}],
                    "activity": audit::activity_name(&e.activity),
                    // Extension: why a change failed, or notes on a system change.
                    "activityResultDetail": (!e.detail.is_empty()).then_some(&e.detail),
                })
            })
            .collect();
        let mut out = json!({"@odata.context": self.context("deviceManagement/auditEvents"), "value": value});
        if let (true, Some(last)) = (more, rows.last()) {
            let mut next = format!(
                "{}{BASE}/auditEvents?$top={limit}&$skiptoken={}",
                self.pki.settings().public_url,
                last.seq
            );
            if let Some(a) = &q.filter_activity {
                let quoted = format!("activityType eq '{}'", a.replace('\'', "''"));
                next.push_str("&$filter=");
                next.push_str(
                    &percent_encoding::utf8_percent_encode(&quoted, percent_encoding::NON_ALPHANUMERIC).to_string(),
                );
            }
            out["@odata.nextLink"] = Value::String(next);
        }
        Ok(json_response(StatusCode::OK, &out))
    }
}
