//! Entry points for the cargo-fuzz targets in `fuzz/` (`graph_body`,
//! `odata_query`): the API's private parsers and the checks its handlers make
//! before calling the domain, run on untrusted input without a server, a
//! store or a token. Not an API: nothing outside `fuzz/` should call it.
//!
//! Where a handler's checks are inline (they need an authenticated caller and
//! a [`Pki`](crate::domain::Pki)), the functions here repeat them step for
//! step with the same helpers; keep them in step when a handler changes.

use std::sync::OnceLock;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};

use super::bodies::{
    body, check_length, graph_placeholder, CreateCaBody, IssueBody, LeafMetaBody, PatchCaBody, ReasonBody,
    RevokeLeafBody, SerialBody, StatusBody, UploadBody, VersionBody, MAX_DESCRIPTION, MAX_DISPLAY_NAME,
};
use super::error::ApiError;
use super::query::{parse_query, seq_token, window, Collection, Options, CA_COLLECTION, LEAF_COLLECTION, PAGE_SIZE};
use super::{ApiRequest, BASE};
use crate::domain::{CaStatus, PkiError, RevocationReason};

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
