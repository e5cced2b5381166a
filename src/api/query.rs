//! Query options: parsing them (an option we do not understand is a 400,
//! not ignored), what each collection allows, the offset window of a loaded
//! collection, and the leaves' keyset paging (`$orderby`, the `$skiptoken`
//! cursor, `$filter` on status).

use serde_json::{json, Value};

use super::error::ApiError;
use super::odata;
use crate::domain::{LeafOrder, SortKey};

/// Leaves per page when the client does not ask for fewer.
pub(super) const PAGE_SIZE: u32 = 100;

/// Query options we understand; anything else is refused (400), not ignored.
#[derive(Debug, Default)]
pub(super) struct Query {
    pub(super) top: Option<u32>,
    pub(super) skip: Option<usize>,
    /// Opaque: each collection reads its own tokens.
    pub(super) skiptoken: Option<String>,
    pub(super) count: bool,
    pub(super) filter: Option<String>,
    pub(super) orderby: Option<String>,
    pub(super) select: Option<String>,
    pub(super) filter_activity: Option<String>,
}

pub(super) fn parse_query(q: Option<&str>) -> Result<Query, ApiError> {
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
pub(super) struct Collection {
    filter: &'static [&'static str],
    orderby: &'static [&'static str],
    select: &'static [&'static str],
}

pub(super) const CA_COLLECTION: Collection = Collection {
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

pub(super) const LEAF_COLLECTION: Collection = Collection {
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
pub(super) struct Options {
    filter: Option<odata::Filter>,
    orderby: Option<odata::OrderBy>,
    pub(super) select: Option<Vec<String>>,
}

impl Options {
    pub(super) fn parse(q: &Query, c: &Collection) -> Result<Self, ApiError> {
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

    pub(super) fn keeps(&self, v: &Value) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(v))
    }

    pub(super) fn shape(&self, v: Value) -> Value {
        match &self.select {
            Some(props) => odata::select(v, props),
            None => v,
        }
    }
}

/// The query options of a single-entity GET: `$select` only (Graph's item
/// GETs), with the same properties and 400s as the entity's collection.
pub(super) fn item_select(query: Option<&str>, c: &Collection) -> Result<Option<Vec<String>>, ApiError> {
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
pub(super) fn shape(v: Value, select: Option<&[String]>) -> Value {
    match select {
        Some(props) => odata::select(v, props),
        None => v,
    }
}

/// Applies ordering, counting, `$skip`/`$top` to a fully loaded, filtered collection.
pub(super) fn window(
    mut items: Vec<Value>,
    q: &Query,
    o: &Options,
    default_top: Option<u32>,
) -> (Vec<Value>, usize, bool) {
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
pub(super) const MAX_SKIP: usize = 10_000;

/// A `$skiptoken` that is a sequence number (audit events), 0 when absent.
pub(super) fn seq_token(t: Option<&str>) -> Result<i64, ApiError> {
    t.map_or(Ok(0), |t| {
        t.parse()
            .ok()
            .filter(|n: &i64| *n >= 0)
            .ok_or_else(|| ApiError::bad_request("invalid $skiptoken"))
    })
}

/// The leaf order `$orderby` names: one property, ties by issuance.
pub(super) fn leaf_order(o: &Options) -> Result<(LeafOrder, bool, String), ApiError> {
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
pub(super) fn admitted_statuses(o: &Options) -> [bool; 3] {
    ["active", "expired", "revoked"].map(|s| o.keeps(&json!({ "certificateStatus": s })))
}

/// Where a leaf page ended, opaque to clients: the order it belongs to, the
/// instant statuses are judged at (fixed by the first page) and the last
/// row's sort key.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LeafToken {
    pub(super) at: i64,
    pub(super) cursor: crate::domain::LeafCursor,
}

impl LeafToken {
    pub(super) fn encode(&self, order: &str) -> String {
        let key = match &self.cursor.key {
            SortKey::Int(n) => json!(n),
            SortKey::Text(t) => json!(t),
        };
        let raw = json!([order, self.at, self.cursor.rank, self.cursor.seq, key]).to_string();
        <base64ct::Base64UrlUnpadded as base64ct::Encoding>::encode_string(raw.as_bytes())
    }

    pub(super) fn decode(token: &str, order: &str) -> Result<Self, ApiError> {
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
