//! The management API, shaped like Microsoft Graph beta:
//! `/beta/deviceManagement/cloudCertificationAuthority…`.
//!
//! Each request is authenticated (bearer JWT), checked against the Graph
//! permission (`scp`/`roles`) and the principal's Intune role assignments
//! (permissions and scope tags), then handed to the domain on a blocking
//! thread. Errors are Graph error bodies, decided in one place ([`error`]).

pub mod dto;
pub mod error;
pub mod metadata;
pub mod odata;
pub mod openapi;
pub mod routes;

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Access, AuthError, CloudPkiPermission as P, RbacError, TokenIssuer};
use crate::domain::audit;
use crate::domain::{
    Ca, CaStatus, CaType, KeyPlatform, LeafOrder, LeafPageRequest, NewCa, NewLeaf, Pki, PkiError, RevocationReason,
    SortKey,
};
use crate::x509::names::SubjectParts;
use error::ApiError;
pub use error::{full, Body, ChunkBody};
use routes::{Match, Op};

pub const BASE: &str = "/beta/deviceManagement";
const CA: &str = "cloudCertificationAuthority";
const LEAF: &str = "cloudCertificationAuthorityLeafCertificate";
const CA_T: &str = "CloudCertificationAuthority";
const LEAF_T: &str = "CloudCertificationAuthorityLeafCertificate";
/// Largest JSON body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// Leaves per page when the client does not ask for fewer.
const PAGE_SIZE: u32 = 100;

/// What the API needs.
pub struct Api {
    pki: Arc<Pki>,
    tokens: TokenIssuer,
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
pub(crate) struct ApiToken {
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

/// Longest displayName accepted (Intune's console limit is far lower; this
/// bounds what a caller can make us store and echo).
pub const MAX_DISPLAY_NAME: usize = 256;
/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 1024;

fn check_length(property: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if v.chars().count() > max => Err(ApiError::bad_request(format!(
            "{property} is longer than {max} characters"
        ))),
        _ => Ok(()),
    }
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

fn entity<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

/// A domain record as its Graph entity.
fn graph<T: dto::ToGraph>(v: &T) -> Result<Value, ApiError> {
    entity(&v.to_graph())
}

/// Query options we understand; anything else is refused (400), not ignored.
#[derive(Debug, Default)]
struct Query {
    top: Option<u32>,
    skip: Option<usize>,
    /// Opaque: each collection reads its own tokens.
    skiptoken: Option<String>,
    count: bool,
    filter: Option<String>,
    orderby: Option<String>,
    select: Option<String>,
    filter_activity: Option<String>,
}

fn parse_query(q: Option<&str>) -> Result<Query, ApiError> {
    let mut out = Query::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_encoding::percent_decode_str(k).decode_utf8_lossy().to_string();
        let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
            .decode_utf8_lossy()
            .to_string();
        match k.as_str() {
            "$top" => {
                let n: u32 = v
                    .parse()
                    .map_err(|_| ApiError::bad_request("$top must be a positive integer"))?;
                if n == 0 || n > 999 {
                    return Err(ApiError::bad_request("$top must be 1 to 999"));
                }
                out.top = Some(n);
            }
            "$skip" => {
                out.skip = Some(
                    v.parse()
                        .map_err(|_| ApiError::bad_request("$skip must be a non-negative integer"))?,
                )
            }
            "$skiptoken" => {
                if v.is_empty() || v.len() > 1024 {
                    return Err(ApiError::bad_request("invalid $skiptoken"));
                }
                out.skiptoken = Some(v)
            }
            "$count" => {
                out.count = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(ApiError::bad_request("$count must be true or false")),
                }
            }
            "$filter" if v.trim_start().starts_with("activityType eq ") => {
                let value = v.trim_start().trim_start_matches("activityType eq ").trim();
                if value.len() < 2 || !value.starts_with('\'') || !value.ends_with('\'') {
                    return Err(ApiError::bad_request("activityType must be a quoted string"));
                }
                out.filter_activity = Some(value[1..value.len() - 1].replace("''", "'"));
            }
            "$filter" => out.filter = Some(v),
            "$orderby" => out.orderby = Some(v),
            "$select" => out.select = Some(v),
            other => return Err(ApiError::bad_request(format!("unsupported query option {other}"))),
        }
    }
    Ok(out)
}

/// What a collection allows in its query options (Graph's documented sets).
struct Collection {
    filter: &'static [&'static str],
    orderby: &'static [&'static str],
    select: &'static [&'static str],
}

const CA_COLLECTION: Collection = Collection {
    filter: &["certificationAuthorityStatus", "cloudCertificationAuthorityType"],
    orderby: &[
        "displayName",
        "certificationAuthorityStatus",
        "certificationAuthorityIssuerId",
        "cloudCertificationAuthorityType",
        "validityStartDateTime",
        "validityEndDateTime",
        "subjectName",
    ],
    select: &[
        "id",
        "displayName",
        "certificationAuthorityIssuerId",
        "thumbprint",
        "serialNumber",
        "subjectName",
        "commonName",
    ],
};

const LEAF_COLLECTION: Collection = Collection {
    filter: &["certificateStatus"],
    orderby: &[
        "subjectName",
        "certificateStatus",
        "validityStartDateTime",
        "validityEndDateTime",
    ],
    select: &[
        "id",
        "subjectName",
        "thumbprint",
        "serialNumber",
        "deviceName",
        "userPrincipalName",
        "deviceId",
        "userId",
        "devicePlatform",
    ],
};

/// The parsed options of one collection request.
struct Options {
    filter: Option<odata::Filter>,
    orderby: Option<odata::OrderBy>,
    select: Option<Vec<String>>,
}

impl Options {
    fn parse(q: &Query, c: &Collection) -> Result<Self, ApiError> {
        if q.filter_activity.is_some() {
            return Err(ApiError::bad_request("activityType filters apply to auditEvents only"));
        }
        Ok(Options {
            filter: q
                .filter
                .as_deref()
                .map(|f| odata::parse_filter(f, c.filter))
                .transpose()?,
            orderby: q
                .orderby
                .as_deref()
                .map(|o| odata::parse_orderby(o, c.orderby))
                .transpose()?,
            select: q
                .select
                .as_deref()
                .map(|s| odata::parse_select(s, c.select))
                .transpose()?,
        })
    }

    fn keeps(&self, v: &Value) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(v))
    }

    fn shape(&self, v: Value) -> Value {
        match &self.select {
            Some(props) => odata::select(v, props),
            None => v,
        }
    }
}

/// The query options of a single-entity GET: `$select` only (Graph's item
/// GETs), with the same properties and 400s as the entity's collection.
fn item_select(query: Option<&str>, c: &Collection) -> Result<Option<Vec<String>>, ApiError> {
    let q = parse_query(query)?;
    if q.top.is_some()
        || q.skip.is_some()
        || q.skiptoken.is_some()
        || q.count
        || q.filter.is_some()
        || q.filter_activity.is_some()
        || q.orderby.is_some()
    {
        return Err(ApiError::bad_request("a single entity takes $select only"));
    }
    q.select
        .as_deref()
        .map(|s| odata::parse_select(s, c.select))
        .transpose()
}

/// An entity as `$select` asks for it.
fn shape(v: Value, select: Option<&[String]>) -> Value {
    match select {
        Some(props) => odata::select(v, props),
        None => v,
    }
}

/// Applies ordering, counting, `$skip`/`$top` to a fully loaded, filtered collection.
fn window(mut items: Vec<Value>, q: &Query, o: &Options, default_top: Option<u32>) -> (Vec<Value>, usize, bool) {
    if let Some(order) = &o.orderby {
        order.sort(&mut items);
    }
    let total = items.len();
    let skip = q.skip.unwrap_or(0).min(total);
    let top = q.top.or(default_top).map_or(usize::MAX, |t| t as usize);
    let more = total - skip > top;
    let page: Vec<Value> = items.into_iter().skip(skip).take(top).map(|v| o.shape(v)).collect();
    (page, total, more)
}

/// `$skip` beyond this is refused: offsets cost a scan of what they pass.
const MAX_SKIP: usize = 10_000;

/// A `$skiptoken` that is a sequence number (audit events), 0 when absent.
fn seq_token(t: Option<&str>) -> Result<i64, ApiError> {
    t.map_or(Ok(0), |t| {
        t.parse()
            .ok()
            .filter(|n: &i64| *n >= 0)
            .ok_or_else(|| ApiError::bad_request("invalid $skiptoken"))
    })
}

/// The leaf order `$orderby` names: one property, ties by issuance.
fn leaf_order(o: &Options) -> Result<(LeafOrder, bool, String), ApiError> {
    let Some(odata::OrderBy(keys)) = &o.orderby else {
        return Ok((LeafOrder::Issued, false, "issued".into()));
    };
    let [(prop, desc)] = keys.as_slice() else {
        return Err(ApiError::bad_request(
            "$orderby on leaf certificates takes one property (ties go in issuance order)",
        ));
    };
    let order = match prop.as_str() {
        "subjectName" => LeafOrder::Subject,
        "certificateStatus" => LeafOrder::Status,
        "validityStartDateTime" => LeafOrder::NotBefore,
        "validityEndDateTime" => LeafOrder::NotAfter,
        other => return Err(ApiError::bad_request(format!("$orderby on {other} is not supported"))),
    };
    Ok((order, *desc, format!("{prop} {}", if *desc { "desc" } else { "asc" })))
}

/// Which statuses a leaf `$filter` admits. Its only property is
/// `certificateStatus`, so trying the three values decides it exactly, and
/// the store selects them by index.
fn admitted_statuses(o: &Options) -> [bool; 3] {
    ["active", "expired", "revoked"].map(|s| o.keeps(&json!({ "certificateStatus": s })))
}

/// Where a leaf page ended, opaque to clients: the order it belongs to, the
/// instant statuses are judged at (fixed by the first page) and the last
/// row's sort key.
#[derive(Debug, Clone, PartialEq)]
struct LeafToken {
    at: i64,
    cursor: crate::domain::LeafCursor,
}

impl LeafToken {
    fn encode(&self, order: &str) -> String {
        let key = match &self.cursor.key {
            SortKey::Int(n) => json!(n),
            SortKey::Text(t) => json!(t),
        };
        let raw = json!([order, self.at, self.cursor.rank, self.cursor.seq, key]).to_string();
        <base64ct::Base64UrlUnpadded as base64ct::Encoding>::encode_string(raw.as_bytes())
    }

    fn decode(token: &str, order: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::bad_request("invalid $skiptoken (it belongs to the @odata.nextLink it came in)");
        let raw = <base64ct::Base64UrlUnpadded as base64ct::Encoding>::decode_vec(token).map_err(|_| bad())?;
        let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        let [o, at, rank, seq, key] = v.as_array().map(Vec::as_slice).ok_or_else(bad)? else {
            return Err(bad());
        };
        if o.as_str() != Some(order) {
            return Err(bad());
        }
        let key = match key {
            Value::Number(n) => SortKey::Int(n.as_i64().ok_or_else(bad)?),
            Value::String(t) => SortKey::Text(t.clone()),
            _ => return Err(bad()),
        };
        Ok(LeafToken {
            at: at.as_i64().ok_or_else(bad)?,
            cursor: crate::domain::LeafCursor {
                rank: rank
                    .as_u64()
                    .and_then(|r| u8::try_from(r).ok())
                    .filter(|r| *r < 3)
                    .ok_or_else(bad)?,
                key,
                seq: seq.as_i64().ok_or_else(bad)?,
            },
        })
    }
}

/// The Graph create body: read-only properties in it are ignored.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct CreateCaBody {
    display_name: Option<String>,
    description: Option<String>,
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
    fn scope_tags(&self) -> Vec<String> {
        if self.role_scope_tag_ids.is_empty() {
            vec!["0".to_owned()]
        } else {
            self.role_scope_tag_ids.clone()
        }
    }

    /// The domain's request, with Graph's defaults and placeholders applied
    /// (the one translation, shared by the handler and the fuzz target).
    fn into_new_ca(self) -> Result<NewCa, ApiError> {
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
fn graph_placeholder(value: &str) -> bool {
    value.ends_with(" value")
}

fn body<T: serde::de::DeserializeOwned>(req: &ApiRequest<'_>) -> Result<T, ApiError> {
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
    pub fn new(pki: Arc<Pki>, tokens: TokenIssuer, rate_limit: u32) -> Self {
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

    async fn list_tokens(&self, access: &Access) -> Result<Response<Body>, ApiError> {
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

    async fn revoke_token(&self, access: &Access, jti: &str) -> Result<Response<Body>, ApiError> {
        Self::token_admin(access)?;
        let (pki, jti, by) = (self.pki.clone(), jti.to_owned(), access.claims.sub.clone());
        tokio::task::spawn_blocking(move || crate::auth::revoke_token(&pki, &jti, &by))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(rbac_error)?;
        Ok(empty_ok())
    }

    async fn audit_events(&self, req: &ApiRequest<'_>, access: &Access) -> Result<Response<Body>, ApiError> {
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

    async fn list_cas(&self, req: &ApiRequest<'_>, access: &Access) -> Result<Response<Body>, ApiError> {
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

    async fn create_ca(&self, req: &ApiRequest<'_>, access: &Access) -> Result<Response<Body>, ApiError> {
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

    async fn patch_ca(&self, req: &ApiRequest<'_>, access: &Access, id: &str) -> Result<Response<Body>, ApiError> {
        self.visible_ca(access, id, &[P::ReadCas, P::CreateCas]).await?;
        let b: PatchCaBody = body(req)?;
        check_length("displayName", b.display_name.as_deref(), MAX_DISPLAY_NAME)?;
        check_length(
            "description",
            b.description.as_ref().and_then(|d| d.as_deref()),
            MAX_DESCRIPTION,
        )?;
        let (display_name, description, tags) = (b.display_name, b.description, b.role_scope_tag_ids);
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
                p.update_ca(&id, if_match.as_deref(), display_name, description, tags)
            })
            .await?;
        Ok(json_response(StatusCode::OK, &graph(&ca)?))
    }

    /// A CA's leaves, one page at a time in any documented order. Every
    /// order is read from an index after a keyset cursor carried by
    /// `$skiptoken`, so a page costs the same deep in a million-leaf CA as at
    /// its start, and memory holds one page. `$skip` is for short jumps only.
    async fn list_leaves(&self, req: &ApiRequest<'_>, access: &Access, id: &str) -> Result<Response<Body>, ApiError> {
        self.visible_ca(access, id, &[P::ReadCas]).await?;
        let q = parse_query(req.query)?;
        let o = Options::parse(&q, &LEAF_COLLECTION)?;
        let (order, descending, order_name) = leaf_order(&o)?;
        let [active, expired, revoked] = admitted_statuses(&o);
        let skip = q.skip.unwrap_or(0);
        if skip > MAX_SKIP {
            return Err(ApiError::bad_request(format!(
                "$skip is limited to {MAX_SKIP}: to read further, follow @odata.nextLink (its $skiptoken \
                 pages by key at any depth)"
            )));
        }
        let token = q
            .skiptoken
            .as_deref()
            .map(|t| LeafToken::decode(t, &order_name))
            .transpose()?;
        let limit = q.top.unwrap_or(PAGE_SIZE);
        let page_request = LeafPageRequest {
            ca_id: id.to_owned(),
            order,
            descending,
            active,
            expired,
            revoked,
            at: token.as_ref().map(|t| t.at),
            after: token.map(|t| t.cursor),
            // A token already stands past the skipped rows.
            skip: if q.skiptoken.is_some() { 0 } else { skip as u32 },
            limit: limit + 1,
        };
        let (mut rows, at) = self.blocking(access, move |p| p.leaf_page(&page_request)).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let page = rows
            .iter()
            .map(|(l, _)| Ok(o.shape(graph(l)?)))
            .collect::<Result<Vec<Value>, ApiError>>()?;
        let context = self.context(&format!("deviceManagement/cloudCertificationAuthority('{id}')/{LEAF}"));
        let mut out = json!({"@odata.context": context, "value": page});
        if q.count {
            let ca_id = id.to_owned();
            let n = self
                .blocking(access, move |p| p.count_leaves_in(&ca_id, active, expired, revoked, at))
                .await?;
            out["@odata.count"] = json!(n);
        }
        if let (true, Some((_, cursor))) = (more, rows.last()) {
            let token = LeafToken {
                at,
                cursor: cursor.clone(),
            }
            .encode(&order_name);
            let kept: Vec<&str> = req
                .query
                .unwrap_or("")
                .split('&')
                .filter(|p| {
                    !p.is_empty()
                        && !p.starts_with("$skiptoken=")
                        && !p.starts_with("$top=")
                        && !p.starts_with("$skip=")
                })
                .collect();
            let mut next = format!(
                "{}{BASE}/{CA}/{id}/{LEAF}?$top={limit}&$skiptoken={token}",
                self.pki.settings().public_url
            );
            for p in kept {
                next.push('&');
                next.push_str(p);
            }
            out["@odata.nextLink"] = Value::String(next);
        }
        Ok(json_response(StatusCode::OK, &out))
    }

    /// `getAllCloudCertificationAuthorityLeafCertificates`: every leaf in one
    /// answer, as Graph defines it, streamed page by page from the store so
    /// that a million leaves never sit in memory at once.
    fn stream_all_leaves(&self, ca_id: String) -> Response<Body> {
        let (tx, body) = ChunkBody::channel(4);
        let pki = self.pki.clone();
        tokio::task::spawn_blocking(move || {
            let send = |chunk: Vec<u8>| tx.blocking_send(Ok(Bytes::from(chunk))).is_ok();
            let mut buf = b"{\"value\":[".to_vec();
            let mut request = LeafPageRequest {
                ca_id,
                order: LeafOrder::Issued,
                descending: false,
                active: true,
                expired: true,
                revoked: true,
                at: None,
                after: None,
                skip: 0,
                limit: 1000,
            };
            let mut first = true;
            loop {
                let (rows, at) = match pki.leaf_page(&request) {
                    Ok(page) => page,
                    Err(e) => {
                        // Cut the connection: a client must not take a
                        // truncated array for the whole collection.
                        let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                        return;
                    }
                };
                if rows.is_empty() {
                    break;
                }
                for (leaf, cursor) in rows {
                    if !first {
                        buf.push(b',');
                    }
                    first = false;
                    if serde_json::to_writer(&mut buf, &dto::ToGraph::to_graph(&leaf)).is_err() {
                        let _ = tx.blocking_send(Err(std::io::Error::other("serialising a leaf")));
                        return;
                    }
                    request.after = Some(cursor);
                }
                request.at = Some(at);
                // The client went away: stop reading the store.
                if !send(std::mem::take(&mut buf)) {
                    return;
                }
            }
            buf.extend_from_slice(b"]}");
            send(buf);
        });
        let mut r = Response::new(body);
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; odata.metadata=minimal"),
        );
        r
    }

    async fn get_leaf(
        &self,
        req: &ApiRequest<'_>,
        access: &Access,
        ca: Option<&str>,
        leaf: &str,
    ) -> Result<Response<Body>, ApiError> {
        let select = item_select(req.query, &LEAF_COLLECTION)?;
        let leaf_id = leaf.to_owned();
        let (l, _) = self.blocking(access, move |p| p.get_leaf(&leaf_id)).await?;
        if ca.is_some_and(|c| c != l.ca_id) {
            return Err(ApiError::not_found("no such leaf certificate under this CA"));
        }
        self.visible_ca(access, &l.ca_id, &[P::ReadCas]).await?;
        Ok(json_response(StatusCode::OK, &shape(graph(&l)?, select.as_deref())))
    }

    async fn patch_leaf(
        &self,
        req: &ApiRequest<'_>,
        access: &Access,
        ca: Option<&str>,
        leaf: &str,
    ) -> Result<Response<Body>, ApiError> {
        let leaf_id = leaf.to_owned();
        let (l, _) = self.blocking(access, move |p| p.get_leaf(&leaf_id)).await?;
        if ca.is_some_and(|c| c != l.ca_id) {
            return Err(ApiError::not_found("no such leaf certificate under this CA"));
        }
        self.visible_ca(access, &l.ca_id, &[P::ReadCas, P::RevokeLeaves])
            .await?;
        // Every leaf property is read-only: a body is checked to be JSON, and ignored.
        let _: PatchLeafBody = body(req)?;
        let id = leaf.to_owned();
        let target = id.clone();
        let l = self
            .mutate(
                access,
                audit::PATCH_LEAF,
                (LEAF_T, &target),
                (&l.ca_id, &[]),
                move |p| p.update_leaf(&id),
            )
            .await?;
        Ok(json_response(StatusCode::OK, &graph(&l)?))
    }

    async fn action(
        &self,
        req: &ApiRequest<'_>,
        access: &Access,
        id: &str,
        action: Op,
    ) -> Result<Response<Body>, ApiError> {
        let ca_id = id.to_owned();
        let value = match action {
            Op::ChangeStatus => {
                self.visible_ca(access, id, &[P::ReadCas, P::DisableReenableCas])
                    .await?;
                let b: StatusBody = body(req)?;
                let target = b.certification_authority_status.as_deref().unwrap_or("");
                let ca = match CaStatus::parse(target) {
                    Some(CaStatus::Paused) => {
                        self.mutate(access, audit::CHANGE_STATUS, (CA_T, id), (id, &[]), move |p| {
                            p.pause_ca(&ca_id)
                        })
                        .await?
                    }
                    Some(CaStatus::Active) => {
                        self.mutate(access, audit::CHANGE_STATUS, (CA_T, id), (id, &[]), move |p| {
                            p.resume_ca(&ca_id)
                        })
                        .await?
                    }
                    _ => {
                        return Err(ApiError::bad_request(
                            "certificationAuthorityStatus must be paused or active (revoke has its own action)",
                        ))
                    }
                };
                graph(&ca)?
            }
            Op::RevokeCa => {
                self.visible_ca(access, id, &[P::ReadCas, P::DisableReenableCas, P::RevokeLeaves])
                    .await?;
                let _: VersionBody = body(req)?;
                graph(
                    &self
                        .mutate(access, audit::REVOKE_CA, (CA_T, id), (id, &[]), move |p| {
                            p.revoke_ca(&ca_id, None)
                        })
                        .await?,
                )?
            }
            Op::UploadSigned => {
                self.visible_ca(access, id, &[P::ReadCas, P::CreateCas]).await?;
                let b: UploadBody = body(req)?;
                let chain: String = b
                    .trust_chain_certificates
                    .iter()
                    .map(|c| format!("{}\n", c.certificate))
                    .collect();
                let signed = b.signed_certificate.unwrap_or_default();
                graph(
                    &self
                        .mutate(access, audit::UPLOAD, (CA_T, id), (id, &[]), move |p| {
                            p.upload_signed_certificate(&ca_id, signed.as_bytes(), chain.as_bytes())
                        })
                        .await?,
                )?
            }
            Op::RevokeLeaf => {
                self.visible_ca(access, id, &[P::ReadCas, P::RevokeLeaves]).await?;
                let b: RevokeLeafBody = body(req)?;
                let leaf = b
                    .leaf_certificate_id
                    .ok_or_else(|| ApiError::bad_request("leafCertificateId is required"))?;
                graph(
                    &self
                        .mutate(access, audit::REVOKE_LEAF, (CA_T, id), (id, &[]), move |p| {
                            p.revoke_leaf(&leaf, Some(&ca_id), RevocationReason::Unspecified)
                        })
                        .await?,
                )?
            }
            Op::RevokeLeafBySerial => {
                self.visible_ca(access, id, &[P::ReadCas, P::RevokeLeaves]).await?;
                let serial = body::<SerialBody>(req)?.serial()?;
                graph(
                    &self
                        .mutate(access, audit::REVOKE_LEAF, (CA_T, id), (id, &[]), move |p| {
                            p.revoke_leaf_by_serial(Some(&ca_id), &serial, RevocationReason::Unspecified)
                        })
                        .await?,
                )?
            }
            Op::SearchBySerial => {
                self.visible_ca(access, id, &[P::ReadCas]).await?;
                let serial = body::<SerialBody>(req)?.serial()?;
                graph(
                    &self
                        .blocking(access, move |p| p.find_leaf_by_serial(Some(&ca_id), &serial))
                        .await?,
                )?
            }
            Op::GetAllLeaves => {
                self.visible_ca(access, id, &[P::ReadCas]).await?;
                return Ok(self.stream_all_leaves(ca_id));
            }
            Op::IssueLeaf => {
                self.visible_ca(access, id, &[P::ReadCas, P::CreateCas]).await?;
                let b: IssueBody = body(req)?;
                let csr_text = b.certificate_signing_request.ok_or_else(|| {
                    ApiError::bad_request("certificateSigningRequest is required (PEM or base64 DER)")
                })?;
                let csr = crate::x509::pem::decode_one(
                    csr_text.as_bytes(),
                    &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
                )
                .map_err(|e| ApiError::bad_request(format!("certificateSigningRequest: {e}")))?;
                let req = NewLeaf {
                    csr,
                    device_name: b.meta.device_name,
                    user_principal_name: b.meta.user_principal_name,
                    device_id: b.meta.device_id,
                    user_id: b.meta.user_id,
                    device_platform: b.meta.device_platform,
                    validity_days: b.validity_in_days,
                };
                let (leaf, der) = self
                    .mutate(access, audit::ISSUE_LEAF, (CA_T, id), (id, &[]), move |p| {
                        p.issue_leaf(&ca_id, &req)
                    })
                    .await?;
                let mut v = graph(&leaf)?;
                v["certificate"] = Value::String(<base64ct::Base64 as base64ct::Encoding>::encode_string(&der));
                return Ok(json_response(StatusCode::CREATED, &json!({ "value": v })));
            }
            Op::RevokeAllLeaves => {
                self.visible_ca(access, id, &[P::ReadCas, P::RevokeLeaves]).await?;
                let b: ReasonBody = body(req)?;
                let reason = match b.reason.as_deref() {
                    None => RevocationReason::CessationOfOperation,
                    Some(r) => RevocationReason::parse(r)
                        .ok_or_else(|| ApiError::bad_request(format!("unknown reason {r}")))?,
                };
                let n = self
                    .mutate(access, audit::REVOKE_LEAF, (CA_T, id), (id, &[]), move |p| {
                        p.revoke_all_leaves(&ca_id, reason, 500, &mut |_| {})
                    })
                    .await?;
                return Ok(json_response(StatusCode::OK, &json!({ "value": n })));
            }
            other => return Err(ApiError::internal(format!("{other:?} is not an action"))),
        };
        Ok(json_response(StatusCode::OK, &json!({ "value": value })))
    }
}

/// What PATCH may change; other (read-only) properties are ignored.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PatchCaBody {
    display_name: Option<String>,
    /// Absent: unchanged; null: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<String>")]
    description: Option<Option<String>>,
    role_scope_tag_ids: Option<Vec<String>>,
}

/// Tells a present `null` (Some(None)) from an absent field (None, by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct StatusBody {
    #[schemars(required)]
    certification_authority_status: Option<String>,
    #[allow(dead_code)]
    certification_authority_version: Option<i64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct VersionBody {
    #[allow(dead_code)]
    certification_authority_version: Option<i64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "trustChainCertificate")]
struct TrustChainCertificate {
    #[allow(dead_code)]
    display_name: Option<String>,
    certificate: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct UploadBody {
    signed_certificate: Option<String>,
    #[serde(default)]
    trust_chain_certificates: Vec<TrustChainCertificate>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct RevokeLeafBody {
    #[schemars(required)]
    leaf_certificate_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SerialBody {
    #[schemars(required)]
    certificate_serial_number: Option<String>,
}

impl SerialBody {
    fn serial(self) -> Result<String, ApiError> {
        self.certificate_serial_number
            .ok_or_else(|| ApiError::bad_request("certificateSerialNumber is required"))
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ReasonBody {
    reason: Option<String>,
}

/// PATCH on a leaf: Graph marks every leaf property read-only (device and
/// user are recorded at issuance), so whatever the body holds is ignored and
/// the leaf is answered unchanged. Kept for Graph clients and its examples.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub(crate) struct PatchLeafBody {}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct LeafMetaBody {
    device_name: Option<String>,
    user_principal_name: Option<String>,
    device_id: Option<String>,
    user_id: Option<String>,
    device_platform: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct IssueBody {
    #[schemars(required)]
    certificate_signing_request: Option<String>,
    validity_in_days: Option<u32>,
    #[serde(flatten)]
    meta: LeafMetaBody,
}

/// Entry points for the cargo-fuzz targets in `fuzz/` (`graph_body`,
/// `odata_query`): the API's private parsers and the checks its handlers make
/// before calling the domain, run on untrusted input without a server, a
/// store or a token. Not an API: nothing outside `fuzz/` should call it.
///
/// Where a handler's checks are inline (they need an authenticated caller and
/// a [`Pki`]), the functions here repeat them step for step with the same
/// helpers; keep them in step when a handler changes.
#[doc(hidden)]
pub mod fuzzing {
    use std::sync::OnceLock;

    use super::*;

    /// The request bodies, in the order [`graph_bodies`] returns them.
    pub const BODY_KINDS: [&str; 10] = [
        "createCloudCertificationAuthority",
        "patchCloudCertificationAuthority",
        "changeCloudCertificationAuthorityStatus",
        "revokeCloudCertificationAuthorityCertificate",
        "uploadExternallySignedCertificationAuthorityCertificate",
        "revokeLeafCertificate",
        "revokeLeafCertificateBySerialNumber",
        "revokeAllLeafCertificates",
        "patchLeafCertificate",
        "issueLeafCertificate",
    ];

    /// Decodes `raw` as every request body the API reads (sent with
    /// `content_type`) and applies what each handler checks before the
    /// domain call, and the domain's own checks of those values that need no
    /// store (subject names, EKU OIDs, validity, serials, device platforms,
    /// PEM). One result per [`BODY_KINDS`] entry.
    pub fn graph_bodies(raw: &[u8], content_type: &str) -> Vec<Result<(), ApiError>> {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(content_type) {
            headers.insert(header::CONTENT_TYPE, v);
        }
        let req = ApiRequest {
            method: &Method::POST,
            path: BASE,
            query: None,
            headers: &headers,
            body: Bytes::copy_from_slice(raw),
        };
        vec![
            create_ca(&req),
            patch_ca(&req),
            body::<StatusBody>(&req).and_then(|b| {
                match CaStatus::parse(b.certification_authority_status.as_deref().unwrap_or("")) {
                    Some(CaStatus::Paused | CaStatus::Active) => Ok(()),
                    _ => Err(ApiError::bad_request(
                        "certificationAuthorityStatus must be paused or active",
                    )),
                }
            }),
            body::<VersionBody>(&req).map(drop),
            upload(&req),
            body::<RevokeLeafBody>(&req).and_then(|b| {
                b.leaf_certificate_id
                    .map(drop)
                    .ok_or_else(|| ApiError::bad_request("leafCertificateId is required"))
            }),
            body::<SerialBody>(&req).and_then(|b| {
                let serial = b.serial()?;
                crate::x509::normalize_serial(&serial)
                    .map(drop)
                    .ok_or_else(|| ApiError::bad_request("not a hexadecimal serial number"))
            }),
            body::<ReasonBody>(&req).and_then(|b| match b.reason.as_deref() {
                None => Ok(()),
                Some(r) => RevocationReason::parse(r)
                    .map(drop)
                    .ok_or_else(|| ApiError::bad_request(format!("unknown reason {r}"))),
            }),
            body::<LeafMetaBody>(&req).and_then(|b| platform(b.device_platform.filter(|p| !graph_placeholder(p)))),
            issue_leaf(&req),
        ]
    }

    fn platform(p: Option<String>) -> Result<(), ApiError> {
        match p {
            Some(p) if crate::domain::device_platform(&p).is_none() => {
                Err(ApiError::bad_request(format!("unknown devicePlatform {p:?}")))
            }
            _ => Ok(()),
        }
    }

    fn x509(e: crate::x509::X509Error) -> ApiError {
        ApiError::from(PkiError::from(e))
    }

    /// `Api::create_ca`, then `Pki::create_ca` up to key generation.
    fn create_ca(req: &ApiRequest<'_>) -> Result<(), ApiError> {
        let b: CreateCaBody = body(req)?;
        check_length("displayName", b.display_name.as_deref(), MAX_DISPLAY_NAME)?;
        check_length("description", b.description.as_deref(), MAX_DESCRIPTION)?;
        let new = b.into_new_ca()?;
        new.subject.validate().map_err(x509)?;
        for oid in &new.ekus {
            crate::domain::engine::parse_oid(oid)?;
        }
        let name = new.subject.to_name().map_err(x509)?;
        let _ = crate::x509::names::graph_subject_name(&name);
        Ok(())
    }

    /// `Api::patch_ca` up to the domain call.
    fn patch_ca(req: &ApiRequest<'_>) -> Result<(), ApiError> {
        let b: PatchCaBody = body(req)?;
        check_length("displayName", b.display_name.as_deref(), MAX_DISPLAY_NAME)?;
        check_length(
            "description",
            b.description.as_ref().and_then(|d| d.as_deref()),
            MAX_DESCRIPTION,
        )?;
        match b.role_scope_tag_ids {
            Some(t) if t.is_empty() => Err(ApiError::bad_request(
                "roleScopeTagIds must name at least one scope tag",
            )),
            _ => Ok(()),
        }
    }

    /// The upload action, then `Pki::upload_signed_certificate`'s parsing.
    fn upload(req: &ApiRequest<'_>) -> Result<(), ApiError> {
        let b: UploadBody = body(req)?;
        let chain: String = b
            .trust_chain_certificates
            .iter()
            .map(|c| format!("{}\n", c.certificate))
            .collect();
        let signed = b.signed_certificate.unwrap_or_default();
        let der = crate::x509::pem::decode_one(signed.as_bytes(), &["CERTIFICATE"]).map_err(x509)?;
        crate::x509::cert::ParsedCert::from_der(&der)
            .and_then(|c| c.check_serial())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        for der in crate::x509::pem::decode_all(chain.as_bytes(), &["CERTIFICATE"]).map_err(x509)? {
            crate::x509::cert::ParsedCert::from_der(&der).map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        Ok(())
    }

    /// The issue action up to the domain call, and its device platform check.
    fn issue_leaf(req: &ApiRequest<'_>) -> Result<(), ApiError> {
        let b: IssueBody = body(req)?;
        let csr_text = b
            .certificate_signing_request
            .ok_or_else(|| ApiError::bad_request("certificateSigningRequest is required (PEM or base64 DER)"))?;
        crate::x509::pem::decode_one(csr_text.as_bytes(), &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"])
            .map_err(|e| ApiError::bad_request(format!("certificateSigningRequest: {e}")))?;
        platform(b.meta.device_platform)
    }

    /// One collection's answer to a query, over the sample entities.
    #[derive(Debug)]
    pub struct Page {
        /// Entities that passed `$filter`.
        pub total: usize,
        pub page: Vec<Value>,
        pub more: bool,
        /// The `$select`ed properties, if any.
        pub select: Option<Vec<String>>,
    }

    /// What [`odata_query`] found.
    #[derive(Debug)]
    pub struct QueryRun {
        pub top: Option<u32>,
        pub skip: Option<usize>,
        /// How many sample entities each collection has.
        pub samples: [usize; 2],
        /// `GET …/cloudCertificationAuthority` and `GET …/{id}/…LeafCertificate`
        /// with offset paging (`Options` + `window`), or their 400.
        pub offset_pages: [Result<Page, ApiError>; 2],
        /// The leaves' keyset paging (`$skiptoken`), as `list_leaves` does it.
        pub keyset_page: Option<Page>,
        /// `auditEvents`' refusal of the options it does not take, if any.
        pub audit: Result<(), ApiError>,
        /// The query strings of the nextLinks the API would write, each with
        /// the result of parsing it again.
        pub next_links: Vec<(String, Result<(), ApiError>)>,
        /// `activityType eq '…'`: the value, and what its nextLink parses back to.
        pub activity: Option<(String, Option<String>)>,
    }

    /// Sample entities (CAs, leaves) as the API serialises them, with the
    /// properties the query options name; some missing or null.
    fn samples() -> &'static [Vec<Value>; 2] {
        static SAMPLES: OnceLock<[Vec<Value>; 2]> = OnceLock::new();
        SAMPLES.get_or_init(|| {
            let ca = |id: &str, name: &str, status: &str, kind: &str, start: Value, subject: &str| {
                json!({
                    "@odata.type": "#microsoft.graph.cloudCertificationAuthority",
                    "id": id, "displayName": name, "certificationAuthorityStatus": status,
                    "cloudCertificationAuthorityType": kind, "validityStartDateTime": start,
                    "validityEndDateTime": "2036-01-01T00:00:00Z", "subjectName": subject,
                    "certificationAuthorityIssuerId": null, "thumbprint": "AB12", "serialNumber": "01",
                    "commonName": name, "validityPeriodInYears": 10,
                })
            };
            let leaf = |id: &str, subject: &str, status: &str, platform: Value| {
                json!({
                    "@odata.type": "#microsoft.graph.cloudCertificationAuthorityLeafCertificate",
                    "id": id, "subjectName": subject, "certificateStatus": status,
                    "validityStartDateTime": "2026-01-01T00:00:00Z", "validityEndDateTime": "2027-01-01T00:00:00Z",
                    "thumbprint": "CD34", "serialNumber": "2F30", "deviceName": "device-1",
                    "userPrincipalName": "alice@example.org", "deviceId": "d1", "userId": "u1",
                    "devicePlatform": platform,
                })
            };
            [
                vec![
                    ca(
                        "r1",
                        "Root",
                        "active",
                        "rootCertificationAuthority",
                        json!("2026-01-01T00:00:00Z"),
                        "CN=Root",
                    ),
                    ca(
                        "i1",
                        "issuing A",
                        "paused",
                        "issuingCertificationAuthority",
                        json!("2026-02-01T00:00:00Z"),
                        "CN=A, O=x",
                    ),
                    ca(
                        "i2",
                        "Issuing b",
                        "signingPending",
                        "issuingCertificationAuthorityWithExternalRoot",
                        Value::Null,
                        "CN=B",
                    ),
                    ca(
                        "i3",
                        "ÉTÉ ca",
                        "revoked",
                        "issuingCertificationAuthority",
                        json!("2025-01-01T00:00:00Z"),
                        "CN=É",
                    ),
                    json!({"id": "bare", "displayName": "bare"}),
                ],
                vec![
                    leaf("l1", "CN=device-1", "active", json!("Windows10AndLater")),
                    leaf("l2", "CN=Device-2", "revoked", json!("iOS")),
                    leaf("l3", "CN=device-0", "expired", Value::Null),
                    leaf("l4", "CN=d'quote", "active", json!("Unknown")),
                    json!({"id": "bare"}),
                ],
            ]
        })
    }

    /// `parse_query` on a raw query string (after `?`, still
    /// percent-encoded), then what the collection handlers do with it.
    pub fn odata_query(query: &str) -> Result<QueryRun, ApiError> {
        let q = parse_query(Some(query))?;
        let [cas, leaves] = samples();
        let offset = |c: &Collection, items: &[Value], default_top: Option<u32>| -> Result<Page, ApiError> {
            let o = Options::parse(&q, c)?;
            let kept: Vec<Value> = items.iter().filter(|v| o.keeps(v)).cloned().collect();
            let (page, total, more) = window(kept, &q, &o, default_top);
            Ok(Page {
                total,
                page,
                more,
                select: o.select,
            })
        };
        let offset_pages = [
            offset(&CA_COLLECTION, cas, None),
            offset(&LEAF_COLLECTION, leaves, Some(PAGE_SIZE)),
        ];
        let mut next_links = Vec::new();
        let mut reparse = |next: String| {
            let r = parse_query(Some(&next)).map(drop);
            next_links.push((next, r));
        };
        // `next_by_skip`'s query (the page length stands for one).
        if let Ok(p) = &offset_pages[0] {
            let mut next = String::new();
            for part in query.split('&').filter(|p| !p.is_empty() && !p.starts_with("$skip=")) {
                next.push_str(part);
                next.push('&');
            }
            next.push_str(&format!("$skip={}", q.skip.unwrap_or(0).saturating_add(p.page.len())));
            reparse(next);
        }
        // Keyset paging over the leaves, sequence numbers 1, 2, …
        let keyset_page = match Options::parse(&q, &LEAF_COLLECTION) {
            Ok(o) => {
                let limit = q.top.unwrap_or(PAGE_SIZE) as usize;
                let after = seq_token(q.skiptoken.as_deref())?;
                let mut page = Vec::new();
                let mut more = false;
                let mut total = 0;
                for (seq, v) in (1i64..).zip(leaves.iter()) {
                    if seq <= after || !o.keeps(v) {
                        continue;
                    }
                    total += 1;
                    if page.len() == limit {
                        more = true;
                        continue;
                    }
                    page.push(o.shape(v.clone()));
                }
                if more {
                    let mut next = format!("$top={limit}&$skiptoken={after}");
                    for p in query
                        .split('&')
                        .filter(|p| !p.is_empty() && !p.starts_with("$skiptoken=") && !p.starts_with("$top="))
                    {
                        next.push('&');
                        next.push_str(p);
                    }
                    reparse(next);
                }
                Some(Page {
                    total,
                    page,
                    more,
                    select: o.select,
                })
            }
            Err(_) => None,
        };
        // `audit_events`.
        let audit = if q.filter.is_some() || q.orderby.is_some() || q.select.is_some() || q.skip.is_some() {
            Err(ApiError::bad_request(
                "auditEvents supports $filter=activityType eq '…', $top and paging only",
            ))
        } else {
            Ok(())
        };
        let activity = q.filter_activity.as_ref().map(|a| {
            let quoted = format!("activityType eq '{}'", a.replace('\'', "''"));
            let next = format!(
                "$top=1&$skiptoken=1&$filter={}",
                percent_encoding::utf8_percent_encode(&quoted, percent_encoding::NON_ALPHANUMERIC)
            );
            let back = parse_query(Some(&next)).ok().and_then(|q| q.filter_activity);
            (a.clone(), back)
        });
        Ok(QueryRun {
            top: q.top,
            skip: q.skip,
            samples: [cas.len(), leaves.len()],
            offset_pages,
            keyset_page,
            audit,
            next_links,
            activity,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn valid_bodies_pass_and_text_plain_is_refused() {
            let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/graph_body/");
            let ok = |file: &str, kind: usize| {
                let raw = std::fs::read(format!("{seeds}{file}")).unwrap();
                let r = graph_bodies(&raw, "application/json");
                assert!(r[kind].is_ok(), "{file}: {:?}", r[kind]);
                assert_eq!(graph_bodies(&raw, "text/plain")[kind].as_ref().unwrap_err().status, 415);
            };
            ok("create-root.json", 0);
            ok("example-003-createCloudCertificationAuthority.json", 0);
            ok("patch-ca.json", 1);
            ok("change-status.json", 2);
            ok("upload.json", 4);
            ok("serial.json", 6);
            ok("patch-leaf.json", 8);
            ok("issue-leaf.json", 9);
            let r = graph_bodies(br#"{"cloudCertificationAuthorityType":"rootCertificationAuthority","commonName":"x","extendedKeyUsages":[{"objectIdentifier":"1.2.268435456"}]}"#, "application/json");
            assert_eq!(r[0].as_ref().unwrap_err().status, 400);
        }

        #[test]
        fn queries_run_over_the_samples() {
            let run = odata_query("$filter=certificateStatus%20eq%20'active'&$select=serialNumber&$top=1").unwrap();
            let leaves = run.offset_pages[1].as_ref().unwrap();
            assert_eq!((leaves.total, leaves.page.len(), leaves.more), (2, 1, true));
            assert!(run.offset_pages[0].is_err(), "certificateStatus is not a CA property");
            assert!(run.keyset_page.unwrap().more);
            assert!(run.next_links.iter().all(|(_, r)| r.is_ok()));
            let run = odata_query("$filter=activityType+eq+'it''s'").unwrap();
            assert_eq!(run.activity, Some(("it's".to_owned(), Some("it's".to_owned()))));
            assert!(odata_query("$top=0").is_err());
        }
    }
}
