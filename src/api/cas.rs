//! The CA collection and entity: list (offset-paged), create, patch. Get and
//! delete are answered in `Api::route`; the CA's bound actions are in
//! `actions.rs`.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::bodies::{
    body, check_length, graph_placeholder, without_placeholders, CreateCaBody, PatchCaBody, MAX_DESCRIPTION,
    MAX_DISPLAY_NAME,
};
use super::error::ApiError;
use super::query::{parse_query, window, Options, Query, CA_COLLECTION};
use super::{graph, if_match, json_response, Api, ApiRequest, Body, BASE, CA, CA_T};
use crate::auth::{Access, CloudPkiPermission as P};
use crate::domain::{audit, CaPatch};

impl Api {
    pub(super) async fn list_cas(&self, req: &ApiRequest<'_>, access: &Access) -> Result<Response<Body>, ApiError> {
        if !access.holds(P::ReadCas) {
            return Err(ApiError::forbidden("requires the Cloud PKI permission: Read CAs"));
        }
        let q = parse_query(req.query)?;
        let o = Options::parse(&q, &CA_COLLECTION)?;
        let cas = self.blocking(access, |p| p.list_cas()).await?;
        let mut items = Vec::new();
        for c in cas.iter().filter(|c| access.sees(&c.scope_tags)) {
            let v = graph(c)?;
            if o.keeps(&v) {
                items.push(v);
            }
        }
        let (page, total, more) = window(items, &q, &o, None);
        let mut out =
            json!({"@odata.context": self.context("deviceManagement/cloudCertificationAuthority"), "value": page});
        if q.count {
            out["@odata.count"] = json!(total);
        }
        if more {
            out["@odata.nextLink"] =
                Value::String(self.next_by_skip(&format!("{BASE}/{CA}"), req.query, &q, page.len()));
        }
        Ok(json_response(StatusCode::OK, &out))
    }

    /// The next page of an offset-paged collection: same options, `$skip` advanced.
    fn next_by_skip(&self, path: &str, raw: Option<&str>, q: &Query, page_len: usize) -> String {
        let kept: Vec<&str> = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("$skip="))
            .collect();
        let mut url = format!("{}{path}?", self.pki.settings().public_url);
        for p in kept {
            url.push_str(p);
            url.push('&');
        }
        url.push_str(&format!("$skip={}", q.skip.unwrap_or(0) + page_len));
        url
    }

    pub(super) async fn create_ca(&self, req: &ApiRequest<'_>, access: &Access) -> Result<Response<Body>, ApiError> {
        if !access.holds(P::CreateCas) {
            return Err(ApiError::forbidden(
                "requires the Cloud PKI permission: Create certificate authorities",
            ));
        }
        let b: CreateCaBody = body(req)?;
        check_length("displayName", b.display_name.as_deref(), MAX_DISPLAY_NAME)?;
        check_length("description", b.description.as_deref(), MAX_DESCRIPTION)?;
        let tags = b.scope_tags();
        if !access.may_assign(P::CreateCas, &tags) {
            return Err(ApiError::forbidden(
                "roleScopeTagIds must be scope tags on which the caller may create certificate authorities",
            ));
        }
        // Anchoring to a root signs with the root's key: the caller must see
        // the root (else 404, as for any invisible CA) and hold "Create
        // certificate authorities" on one of its scope tags (else 403).
        let new = b.into_new_ca()?;
        if let Some(issuer) = &new.issuer_id {
            self.visible_ca(access, issuer, &[P::ReadCas, P::CreateCas]).await?;
        }
        let ca = self
            .mutate(access, audit::CREATE_CA, (CA_T, ""), ("", &tags), move |p| {
                p.create_ca(new)
            })
            .await?;
        Ok(json_response(StatusCode::CREATED, &graph(&ca)?))
    }

    pub(super) async fn patch_ca(
        &self,
        req: &ApiRequest<'_>,
        access: &Access,
        id: &str,
    ) -> Result<Response<Body>, ApiError> {
        self.visible_ca(access, id, &[P::ReadCas, P::CreateCas]).await?;
        let b: PatchCaBody = body(req)?;
        check_length("displayName", b.display_name.as_deref(), MAX_DISPLAY_NAME)?;
        check_length(
            "description",
            b.description.as_ref().and_then(|d| d.as_deref()),
            MAX_DESCRIPTION,
        )?;
        // Only the docs' placeholder: no change asked for, as for other
        // placeholders.
        let tags = match b.role_scope_tag_ids {
            Some(t) if !t.is_empty() && t.iter().all(|x| graph_placeholder(x)) => None,
            other => other.map(|t| without_placeholders(&t)),
        };
        let patch = CaPatch {
            display_name: b.display_name,
            description: b.description,
            role_scope_tag_ids: None,
            crl_partitions: b.crl_partition_count,
            delta_crls: b.delta_crl_enabled,
        };
        if let Some(t) = &tags {
            // An empty list would fall back to tag 0, which the caller may not hold.
            if t.is_empty() {
                return Err(ApiError::bad_request(
                    "roleScopeTagIds must name at least one scope tag (omit it to leave the tags unchanged)",
                ));
            }
            if !access.may_assign(P::CreateCas, t) {
                return Err(ApiError::forbidden(
                    "roleScopeTagIds must be scope tags on which the caller may create certificate authorities",
                ));
            }
        }
        let if_match = if_match(req);
        let id = id.to_owned();
        let target = id.clone();
        let ca = self
            .mutate(access, audit::PATCH_CA, (CA_T, &target), (&target, &[]), move |p| {
                p.update_ca(
                    &id,
                    if_match.as_deref(),
                    CaPatch {
                        role_scope_tag_ids: tags,
                        ..patch
                    },
                )
            })
            .await?;
        Ok(json_response(StatusCode::OK, &graph(&ca)?))
    }
}
