//! A CA's leaf certificates: the keyset-paged list, the streamed getAll,
//! get and patch. Counting them is answered in `Api::route`.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::Value;

use super::bodies::{body, PatchLeafBody};
use super::error::ApiError;
use super::query::{
    admitted_statuses, item_select, leaf_order, parse_query, shape, LeafToken, Options, LEAF_COLLECTION, MAX_SKIP,
    PAGE_SIZE,
};
use super::{
    bytes_response, collection_bytes, dto, graph, json_response, Api, ApiRequest, Body, ChunkBody, BASE, CA, LEAF,
    LEAF_T,
};
use crate::auth::{Access, CloudPkiPermission as P};
use crate::domain::{audit, LeafOrder, LeafPageRequest};

impl Api {
    /// A CA's leaves, one page at a time in any documented order. Every
    /// order is read from an index after a keyset cursor carried by
    /// `$skiptoken`, so a page costs the same deep in a million-leaf CA as at
    /// its start, and memory holds one page. `$skip` is for short jumps only.
    pub(super) async fn list_leaves(
        &self,
        req: &ApiRequest<'_>,
        access: &Access,
        id: &str,
    ) -> Result<Response<Body>, ApiError> {
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
        let context = self.context(&format!("deviceManagement/cloudCertificationAuthority('{id}')/{LEAF}"));
        let count = if q.count {
            let ca_id = id.to_owned();
            Some(
                self.blocking(access, move |p| p.count_leaves_in(&ca_id, active, expired, revoked, at))
                    .await?,
            )
        } else {
            None
        };
        let mut next_link = None;
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
            next_link = Some(next);
        }
        // Entities are written straight to the body; a JSON tree per leaf is
        // built only when $select must cut it.
        let bytes = if o.select.is_some() {
            let value = rows
                .iter()
                .map(|(l, _)| Ok(o.shape(graph(l)?)))
                .collect::<Result<Vec<Value>, ApiError>>()?;
            collection_bytes(context, count, next_link, &value)
        } else {
            let value: Vec<dto::LeafCertificate> = rows.iter().map(|(l, _)| l.into()).collect();
            collection_bytes(context, count, next_link, &value)
        }?;
        Ok(bytes_response(StatusCode::OK, bytes))
    }

    /// `getAllCloudCertificationAuthorityLeafCertificates`: every leaf in one
    /// answer, as Graph defines it, streamed page by page from the store so
    /// that a million leaves never sit in memory at once.
    pub(super) fn stream_all_leaves(&self, ca_id: String) -> Response<Body> {
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

    /// A leaf the caller may act on: under the CA the path names (if it
    /// names one), on a CA the caller sees with `perms` (see `visible_ca`).
    async fn visible_leaf(
        &self,
        access: &Access,
        ca: Option<&str>,
        leaf: &str,
        perms: &[P],
    ) -> Result<crate::domain::Leaf, ApiError> {
        let leaf_id = leaf.to_owned();
        let (l, _) = self.blocking(access, move |p| p.get_leaf(&leaf_id)).await?;
        if ca.is_some_and(|c| c != l.ca_id) {
            return Err(ApiError::not_found("no such leaf certificate under this CA"));
        }
        self.visible_ca(access, &l.ca_id, perms).await?;
        Ok(l)
    }

    pub(super) async fn get_leaf(
        &self,
        req: &ApiRequest<'_>,
        access: &Access,
        ca: Option<&str>,
        leaf: &str,
    ) -> Result<Response<Body>, ApiError> {
        let select = item_select(req.query, &LEAF_COLLECTION)?;
        let l = self.visible_leaf(access, ca, leaf, &[P::ReadCas]).await?;
        Ok(json_response(StatusCode::OK, &shape(graph(&l)?, select.as_deref())))
    }

    pub(super) async fn patch_leaf(
        &self,
        req: &ApiRequest<'_>,
        access: &Access,
        ca: Option<&str>,
        leaf: &str,
    ) -> Result<Response<Body>, ApiError> {
        let l = self
            .visible_leaf(access, ca, leaf, &[P::ReadCas, P::RevokeLeaves])
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
}
