//! The management API, shaped like Microsoft Graph beta:
//! `/beta/deviceManagement/cloudCertificationAuthority…`.
//!
//! Each request is authenticated (bearer JWT), checked against the Graph
//! permission (`scp`/`roles`) and the principal's Intune role assignments
//! (permissions and scope tags), then handed to the domain on a blocking
//! thread. Errors are Graph error bodies, decided in one place ([`error`]).
//!
//! This file holds [`Api`]: construction, authentication, throttling, routing
//! and the helpers every handler shares (responses, blocking domain calls,
//! audited changes, the scope-tag check of a CA). The submodules, by job:
//!
//! - `query`: query options, collection windows, keyset paging of leaves (`$skiptoken`)
//! - `bodies`: the request bodies (their schemas are the OpenAPI request bodies) and their checks
//! - `cas`: the CA handlers (list, create, patch)
//! - `actions`: the CA's bound actions (status, revoke, upload, issue and revoke leaves, by serial, getAll)
//! - `leaves`: the leaf handlers (keyset-paged list, streamed getAll, get, patch)
//! - `tenant`: `auditEvents` and the API tokens
//! - [`dto`]: the Graph entities, built from the domain records
//! - [`error`]: domain errors as Graph error bodies; the response body types
//! - [`odata`]: `$filter`, `$orderby`, `$select` parsed and applied to JSON entities
//! - [`routes`]: the route table, one row per operation
//! - [`openapi`]: `/openapi.json`, generated from the route table and the types
//! - [`metadata`]: `/beta/$metadata` (CSDL), generated from the OpenAPI document
//! - [`fuzzing`]: entry points for the fuzz targets in `fuzz/` (hidden; not an API)

mod actions;
mod bodies;
mod cas;
pub mod dto;
mod enrolment;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod leaves;
pub mod metadata;
pub mod odata;
pub mod openapi;
mod query;
pub mod routes;
mod tenant;

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde_json::Value;

use crate::auth::{Access, AuthError, CloudPkiPermission as P, RbacError, TokenIssuer};
use crate::domain::audit;
use crate::domain::{Ca, Pki, PkiError};
pub use bodies::{MAX_DESCRIPTION, MAX_DISPLAY_NAME};
use error::ApiError;
pub use error::{full, Body, ChunkBody};
use query::{admitted_statuses, item_select, parse_query, shape, Options, CA_COLLECTION, LEAF_COLLECTION};
use routes::{Match, Op};

pub const BASE: &str = "/beta/deviceManagement";
const CA: &str = "cloudCertificationAuthority";
const LEAF: &str = "cloudCertificationAuthorityLeafCertificate";
const CA_T: &str = "CloudCertificationAuthority";
const LEAF_T: &str = "CloudCertificationAuthorityLeafCertificate";
/// Largest JSON body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// What the API needs.
pub struct Api {
    pki: Arc<Pki>,
    tokens: Arc<TokenIssuer>,
    throttle: Option<Throttle>,
    /// `/openapi.json`, built once.
    openapi: Bytes,
    /// `/beta/$metadata` (CSDL), built once from the same document.
    metadata: Bytes,
}

/// Per-principal token buckets: a caller over its share gets 429 and
/// Retry-After, as Graph throttles, instead of slowing everyone down.
struct Throttle {
    per_second: f64,
    burst: f64,
    buckets: dashmap::DashMap<String, (f64, std::time::Instant)>,
}

impl Throttle {
    /// Takes one request from `who`'s bucket, or says how many seconds until one is free.
    fn admit(&self, who: &str) -> Result<(), u64> {
        let now = std::time::Instant::now();
        let mut entry = self.buckets.entry(who.to_owned()).or_insert((self.burst, now));
        let (tokens, last) = *entry;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.per_second).min(self.burst);
        if tokens >= 1.0 {
            *entry = (tokens - 1.0, now);
            Ok(())
        } else {
            *entry = (tokens, now);
            Err(((1.0 - tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// One parsed request.
pub struct ApiRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

/// Our id for a request and the client's, stamped on every answer.
#[derive(Debug, Clone)]
pub struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
}

impl RequestIds {
    fn stamp(&self, mut resp: Response<Body>) -> Response<Body> {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            h.insert("request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.client_request_id) {
            h.insert("client-request-id", v);
        }
        resp
    }
}

/// A request that passed routing, authentication and the Graph permission
/// check; its body has not been read yet.
#[derive(Debug)]
pub struct Prepared {
    route: &'static routes::Route,
    params: Vec<String>,
    access: Access,
}

impl Prepared {
    /// Whether the operation reads a request body (only then is it read).
    pub fn reads_body(&self) -> bool {
        matches!(self.route.method, "POST" | "PATCH")
    }
}

/// The token of an `Authorization: Bearer …` header; the scheme is
/// case-insensitive (RFC 9110 §11.1).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim_start();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What a caller is told about a CA hidden from it by scope tags: exactly
/// what it is told about one that does not exist.
fn hidden_ca(id: &str) -> ApiError {
    ApiError::from(PkiError::NotFound {
        what: "certification authority",
        id: id.to_owned(),
    })
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; odata.metadata=minimal"),
    );
    r
}

/// A JSON body already serialised.
fn bytes_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; odata.metadata=minimal"),
    );
    r
}

/// A collection page, serialised in one pass (no JSON tree of the page).
fn collection_bytes<T: serde::Serialize>(
    context: String,
    count: Option<u64>,
    next_link: Option<String>,
    value: &[T],
) -> Result<Vec<u8>, ApiError> {
    #[derive(serde::Serialize)]
    struct Page<'a, T> {
        #[serde(rename = "@odata.context")]
        context: String,
        #[serde(rename = "@odata.count", skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
        #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
        next_link: Option<String>,
        value: &'a [T],
    }
    serde_json::to_vec(&Page {
        context,
        count,
        next_link,
        value,
    })
    .map_err(|e| ApiError::internal(e.to_string()))
}

fn entity<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

/// A domain record as its Graph entity.
fn graph<T: dto::ToGraph>(v: &T) -> Result<Value, ApiError> {
    entity(&v.to_graph())
}

/// The `If-Match` header (an eTag, or `*`), checked by the domain.
fn if_match(req: &ApiRequest<'_>) -> Option<String> {
    req.headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn empty_ok() -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

impl Api {
    /// `rate_limit`: requests per second per principal (bursts of twice that); 0 turns throttling off.
    /// The token issuer the API trusts (EST accepts the same bearer tokens).
    pub fn tokens(&self) -> Arc<TokenIssuer> {
        self.tokens.clone()
    }

    pub fn new(pki: Arc<Pki>, tokens: Arc<TokenIssuer>, rate_limit: u32) -> Self {
        let doc = openapi::document(&pki.settings().public_url);
        Api {
            metadata: Bytes::from(metadata::document(&doc)),
            openapi: Bytes::from(serde_json::to_vec_pretty(&doc).unwrap_or_default()),
            pki,
            tokens,
            throttle: (rate_limit > 0).then(|| Throttle {
                per_second: f64::from(rate_limit),
                burst: f64::from(rate_limit) * 2.0,
                buckets: dashmap::DashMap::new(),
            }),
        }
    }

    /// The OpenAPI document (public, like Graph's $metadata).
    pub fn openapi(&self) -> Response<Body> {
        let mut r = Response::new(full(self.openapi.clone()));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }

    /// The CSDL document every `@odata.context` points at (public, like /openapi.json).
    pub fn metadata(&self) -> Response<Body> {
        let mut r = Response::new(full(self.metadata.clone()));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        r
    }

    fn context(&self, what: &str) -> String {
        format!("{}/beta/$metadata#{what}", self.pki.settings().public_url)
    }

    /// Runs a domain call off the async runtime, as the caller.
    async fn blocking<T: Send + 'static>(
        &self,
        access: &Access,
        f: impl FnOnce(&Pki) -> Result<T, PkiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let pki = self.pki.clone();
        let actor = access.claims.sub.clone();
        tokio::task::spawn_blocking(move || audit::with_actor(&actor, || f(&pki)))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(ApiError::from)
    }

    /// A state change: like [`Api::blocking`], and a refusal is audited too.
    /// `scope` names the CA concerned (its scope tags decide who reads the
    /// event) and the tags to record when it does not exist (yet).
    async fn mutate<T: Send + 'static>(
        &self,
        access: &Access,
        activity: &'static str,
        target: (&'static str, &str),
        scope: (&str, &[String]),
        f: impl FnOnce(&Pki) -> Result<T, PkiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let pki = self.pki.clone();
        let actor = access.claims.sub.clone();
        let (target_type, target_id) = (target.0, target.1.to_owned());
        let (ca_id, tags) = (scope.0.to_owned(), scope.1.to_vec());
        tokio::task::spawn_blocking(move || {
            audit::with_actor(&actor, || {
                let out = f(&pki);
                if let Err(e) = &out {
                    let target = (target_type, target_id.as_str());
                    if let Err(log) = pki.record_failure(activity, target, &ca_id, &tags, &e.to_string()) {
                        tracing::error!(error = %log, "could not audit a failed change");
                    }
                }
                out
            })
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<Access, ApiError> {
        let token = bearer_token(headers).ok_or_else(|| ApiError::unauthorized(AuthError::Missing.public_message()))?;
        let claims = self.tokens.verify(token).map_err(|e| {
            // The reason goes to the log; the caller gets a fixed sentence.
            tracing::debug!(error = %e, "bearer token refused");
            ApiError::unauthorized(e.public_message())
        })?;
        let pki = self.pki.clone();
        tokio::task::spawn_blocking(move || Access::resolve(&pki, claims))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| match e {
                RbacError::TokenRevoked => ApiError::unauthorized("the bearer token was revoked"),
                RbacError::Store(crate::store::StoreError::Unavailable(_)) => ApiError::unavailable(),
                RbacError::Store(crate::store::StoreError::Busy) => ApiError::busy(),
                other => ApiError::internal(other.to_string()),
            })
    }

    /// The request's ids: ours, and the client's (echoed) or ours again.
    pub fn request_ids(headers: &HeaderMap) -> RequestIds {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned)
            .unwrap_or_else(|| request_id.clone());
        RequestIds {
            request_id,
            client_request_id,
        }
    }

    /// Everything that can be decided before the body is read: the route,
    /// the caller's identity, throttling and the Graph permission. An
    /// unauthenticated client never gets a body read (or buffered).
    pub async fn prepare(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        ids: &RequestIds,
    ) -> Result<Prepared, Response<Body>> {
        self.prepare_inner(method, path, headers)
            .await
            .map_err(|e| Self::error_response(e, ids))
    }

    async fn prepare_inner(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<Prepared, ApiError> {
        let rest = path.strip_prefix(BASE).unwrap_or("");
        // Know the route before authenticating, so unknown paths are 404 for everyone.
        let (route, params) = match routes::resolve(method.as_str(), rest) {
            Match::Found(route, params) => (route, params.into_iter().map(str::to_owned).collect::<Vec<_>>()),
            Match::WrongMethod => return Err(ApiError::method_not_allowed()),
            Match::NotFound => return Err(ApiError::not_found("no such resource")),
        };
        let access = self.authenticate(headers).await?;
        if let Some(t) = &self.throttle {
            t.admit(&access.claims.sub).map_err(ApiError::too_many_requests)?;
        }
        if !access.claims.can_read() || (route.writes && !access.claims.can_write()) {
            return Err(ApiError::forbidden(if route.writes {
                "the token lacks DeviceManagementCloudCA.ReadWrite.All"
            } else {
                "the token lacks DeviceManagementCloudCA.Read.All (or ReadWrite)"
            }));
        }
        Ok(Prepared { route, params, access })
    }

    /// Runs a prepared request with its body; errors become Graph error bodies.
    pub async fn execute(&self, prepared: &Prepared, req: ApiRequest<'_>, ids: &RequestIds) -> Response<Body> {
        match self.route(prepared, &req).await {
            Ok(r) => ids.stamp(r),
            Err(e) => Self::error_response(e, ids),
        }
    }

    /// A Graph error for this request (also for failures found outside the
    /// API, such as reading the body).
    pub fn error_response(e: ApiError, ids: &RequestIds) -> Response<Body> {
        ids.stamp(e.into_response(&ids.request_id, &ids.client_request_id))
    }

    async fn route(&self, prepared: &Prepared, req: &ApiRequest<'_>) -> Result<Response<Body>, ApiError> {
        let access = &prepared.access;
        // Parameters in path order: `{id}` then `{leafId}`, or `{leafId}` alone.
        let first = prepared.params.first().map_or("", String::as_str);
        let second = prepared.params.get(1).map_or("", String::as_str);
        match prepared.route.op {
            Op::AuditEvents => self.audit_events(req, access).await,
            Op::ListTokens => self.list_tokens(access).await,
            Op::ListProfiles => self.list_profiles(access, first).await,
            Op::CreateProfile => self.create_profile(req, access, first).await,
            Op::DeleteProfile => self.delete_profile(access, first, second).await,
            Op::CreateChallenge => self.create_challenge(req, access, first, second).await,
            Op::ListEnrolmentRequests => self.list_enrolment_requests(access, first).await,
            Op::ApproveEnrolmentRequest => self.decide_enrolment_request(req, access, first, second, true).await,
            Op::RejectEnrolmentRequest => self.decide_enrolment_request(req, access, first, second, false).await,
            Op::RevokeToken => self.revoke_token(access, first).await,
            Op::ListCas => self.list_cas(req, access).await,
            Op::CreateCa => self.create_ca(req, access).await,
            Op::GetCa => {
                let select = item_select(req.query, &CA_COLLECTION)?;
                let ca = self.visible_ca(access, first, &[P::ReadCas]).await?;
                Ok(json_response(StatusCode::OK, &shape(graph(&ca)?, select.as_deref())))
            }
            Op::PatchCa => self.patch_ca(req, access, first).await,
            Op::DeleteCa => {
                let ca = self
                    .visible_ca(access, first, &[P::ReadCas, P::DisableReenableCas, P::RevokeLeaves])
                    .await?;
                let id = first.to_string();
                let if_match = if_match(req);
                self.mutate(
                    access,
                    audit::DELETE_CA,
                    (CA_T, first),
                    (first, &ca.scope_tags),
                    move |p| p.delete_ca(&id, if_match.as_deref()),
                )
                .await?;
                Ok(empty_ok())
            }
            Op::ListLeaves => self.list_leaves(req, access, first).await,
            Op::CountLeaves => {
                self.visible_ca(access, first, &[P::ReadCas]).await?;
                let q = parse_query(req.query)?;
                let o = Options::parse(&q, &LEAF_COLLECTION)?;
                let [active, expired, revoked] = admitted_statuses(&o);
                let id = first.to_string();
                let n = self
                    .blocking(access, move |p| {
                        let at = p.now().unix_timestamp();
                        p.count_leaves_in(&id, active, expired, revoked, at)
                    })
                    .await?;
                let mut r = Response::new(full(n.to_string()));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                Ok(r)
            }
            Op::GetCaLeaf => self.get_leaf(req, access, Some(first), second).await,
            Op::GetLeaf => self.get_leaf(req, access, None, first).await,
            Op::PatchCaLeaf => self.patch_leaf(req, access, Some(first), second).await,
            Op::PatchLeaf => self.patch_leaf(req, access, None, first).await,
            action => self.action(req, access, first, action).await,
        }
    }

    /// Loads a CA the caller may see and act on with `perms`.
    ///
    /// A CA the caller cannot read ("Read CAs" on none of its scope tags)
    /// answers 404 like a CA that does not exist (a 403 would confirm it
    /// exists); a visible CA lacking another permission answers 403.
    async fn visible_ca(&self, access: &Access, id: &str, perms: &[P]) -> Result<Ca, ApiError> {
        let lacking = |perms: &[P]| {
            ApiError::forbidden(format!(
                "requires the Cloud PKI permission(s) {} on a scope tag of this CA",
                perms.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            ))
        };
        // Held on no tag at all: refuse before loading anything.
        if !perms.iter().all(|p| access.holds(*p)) {
            return Err(lacking(perms));
        }
        let id = id.to_owned();
        let ca = self.blocking(access, move |p| p.get_ca(&id)).await?;
        if !access.sees(&ca.scope_tags) {
            return Err(hidden_ca(&ca.id));
        }
        if !access.allows_all(perms, &ca.scope_tags) {
            return Err(lacking(perms));
        }
        Ok(ca)
    }
}
