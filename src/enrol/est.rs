//! EST (RFC 7030) on the TLS listener: `/.well-known/est/{caId}/{op}` (the
//! RFC's label form) and `/{caId}/.well-known/est/{op}` (clients that append
//! `/.well-known/est/{op}` to a base URL, such as strongSwan's `pki --est`).
//!
//! - `cacerts`: the CA and its chain, certs-only PKCS#7, base64.
//! - `csrattrs`: what the CA signs with (a hint for the request's hash).
//! - `simpleenroll`: a base64 PKCS#10, authorised by HTTP Basic whose
//!   password is a challenge of a profile of this CA.
//! - `simplereenroll`: authorised by the TLS client certificate, which must be
//!   a current, unrevoked leaf of this CA (the handshake proved its key).
//!
//! Refusals are HTTP statuses with the reason as text (RFC 7030 §4.2.3):
//! 401 for missing or rejected credentials, 400 for a request the profile or
//! CA does not allow, 404 for an unknown CA.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use zeroize::Zeroizing;

use super::{blocking, text, too_many, Enrolment};
use crate::domain::{EnrolOutcome, EnrolRefusal, EnrolRequest, PkiError};
use crate::x509::scep;

/// Largest EST request body: a base64 CSR.
pub const MAX_BODY: usize = 64 * 1024;

/// The EST operation a path names, and its CA.
pub fn route(path: &str) -> Option<(&str, &str)> {
    if let Some(rest) = path.strip_prefix("/.well-known/est/") {
        let (ca, op) = rest.split_once('/')?;
        return (!ca.is_empty() && !op.contains('/')).then_some((ca, op));
    }
    let (prefix, op) = path.split_once("/.well-known/est/")?;
    let ca = prefix.strip_prefix('/')?;
    (!ca.is_empty() && !ca.contains('/') && !op.contains('/')).then_some((ca, op))
}

fn pkcs7(body: &[u8]) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(base64_body(body))));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pkcs7-mime; smime-type=certs-only"),
    );
    h.insert("content-transfer-encoding", HeaderValue::from_static("base64"));
    r
}

/// Base64 in one line: RFC 7030 allows line breaks, but strongSwan's
/// decoder (5.9) does not skip them, and every reader takes one line.
fn base64_body(der: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(der).into_bytes()
}

fn unauthorized(why: &str) -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::UNAUTHORIZED, format!("{why}\n"));
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"cloudpki EST\""),
    );
    r
}

/// The password of an HTTP Basic `Authorization` header.
fn basic_password(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()?);
    let text = std::str::from_utf8(&raw).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(Zeroizing::new(password.to_owned()))
}

/// The one mapping of domain refusals to EST answers.
fn refused(e: &PkiError) -> Option<Response<Full<Bytes>>> {
    Some(match e {
        PkiError::Enrolment(r @ (EnrolRefusal::Challenge(_) | EnrolRefusal::ChallengeExpired(_))) => {
            unauthorized(&r.to_string())
        }
        PkiError::Enrolment(r @ EnrolRefusal::Certificate(_)) => unauthorized(&r.to_string()),
        PkiError::Enrolment(r) => text(StatusCode::BAD_REQUEST, format!("{r}\n")),
        PkiError::Lifecycle(_) | PkiError::Invalid(_) | PkiError::Rejected(_) | PkiError::X509(_) => {
            text(StatusCode::BAD_REQUEST, format!("{e}\n"))
        }
        PkiError::NotFound { .. } => text(StatusCode::NOT_FOUND, format!("{e}\n")),
        _ => return None,
    })
}

/// One EST request as the listener received it.
#[derive(Debug)]
pub struct EstRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: Option<Bytes>,
    /// The TLS client certificate (end entity, DER).
    pub client_cert: Option<&'a [u8]>,
    pub peer: Option<std::net::IpAddr>,
}

impl Enrolment {
    /// Answers one EST request.
    pub async fn est(&self, req: EstRequest<'_>) -> Response<Full<Bytes>> {
        let EstRequest {
            method,
            path,
            query,
            headers,
            body,
            client_cert,
            peer,
        } = req;
        let Some((ca_id, op)) = route(path) else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        if op.starts_with("simple") {
            if let Some(Err(retry)) = peer.map(|ip| self.limiter.source(ip)) {
                return too_many(retry);
            }
        }
        let pki = self.pki.clone();
        let id = ca_id.to_owned();
        match (method, op) {
            (&Method::GET, "cacerts") => {
                match blocking(move || Ok([vec![pki.ca_certificate(&id)?], pki.ca_chain(&id)?].concat())).await {
                    Ok(certs) => match scep::certs_only(&certs, None) {
                        Ok(der) => pkcs7(&der),
                        Err(e) => self.unavailable(&e.into()),
                    },
                    Err(e) => self.unavailable(&e),
                }
            }
            (&Method::GET, "csrattrs") => match blocking(move || pki.ca_certificate(&id)).await {
                Ok(ca) => csr_attributes(&ca),
                Err(e) => self.unavailable(&e),
            },
            (&Method::POST, "simpleenroll" | "simplereenroll") => {
                let renewing = op == "simplereenroll";
                // An administrator's (or an MDM's) API token may enrol
                // instead of a challenge, naming the profile.
                let (authorised_profile, actor) = match bearer(headers) {
                    Some(token) if !renewing => match self.bearer_profile(token, ca_id, query).await {
                        Ok((profile, principal)) => (Some(profile), Some(principal)),
                        Err(resp) => return resp,
                    },
                    _ => (None, None),
                };
                let challenge = basic_password(headers);
                if let Some(Err(retry)) = challenge.as_ref().map(|c| self.limiter.challenge(c)) {
                    return too_many(retry);
                }
                let current =
                    match (renewing, client_cert) {
                        (true, Some(c)) => Some(c.to_vec()),
                        (true, None) => {
                            return unauthorized(
                                "simplereenroll needs the current certificate as the TLS client certificate",
                            )
                        }
                        (false, _) if challenge.is_none() && authorised_profile.is_none() => return unauthorized(
                            "simpleenroll needs HTTP Basic authentication with an enrolment challenge as the password",
                        ),
                        (false, _) => None,
                    };
                let csr = match body.as_deref().map(decode_base64) {
                    Some(Some(der)) if !der.is_empty() => der,
                    _ => return text(StatusCode::BAD_REQUEST, "the body must be a base64 PKCS#10 request\n"),
                };
                // EST has no transaction ID: a client waiting for approval
                // (or that lost the reply) sends the same request again
                // (RFC 7030 §4.2.3), so the hash of the request (and of the
                // certificate it renews) names it.
                let transaction_id = {
                    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
                    h.update(&csr);
                    if let Some(c) = &current {
                        h.update(c);
                    }
                    crate::x509::hex_upper(h.finish().as_ref())
                };
                let request = EnrolRequest {
                    csr,
                    renewing: current,
                    challenge: if renewing { None } else { challenge },
                    authorised_profile,
                    transaction_id,
                    nonce: None,
                    protocol: "est",
                };
                match blocking(move || match actor {
                    Some(a) => crate::domain::audit::with_actor(&a, || pki.enrol(&id, &request)),
                    None => pki.enrol(&id, &request),
                })
                .await
                {
                    Ok(EnrolOutcome::Issued(done)) => match scep::certs_only(&[done.der], None) {
                        Ok(der) => pkcs7(&der),
                        Err(e) => self.unavailable(&e.into()),
                    },
                    Ok(EnrolOutcome::Pending { .. }) => {
                        let mut r = text(StatusCode::ACCEPTED, "waiting for an administrator's approval\n");
                        r.headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
                        r
                    }
                    Err(e) => refused(&e).unwrap_or_else(|| self.unavailable(&e)),
                }
            }
            (_, "cacerts" | "csrattrs" | "simpleenroll" | "simplereenroll") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            // serverkeygen and fullcmc are not offered (RFC 7030: optional).
            _ => text(StatusCode::NOT_FOUND, "unsupported EST operation\n"),
        }
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Enrolment {
    /// The profile a bearer-token enrolment may use: the token verifies, its
    /// principal holds "Manage enrolment profiles and challenges" on a scope
    /// tag of the CA, and the request names a profile (`?profile=ID`).
    async fn bearer_profile(
        &self,
        token: &str,
        ca_id: &str,
        query: Option<&str>,
    ) -> Result<(String, String), Response<Full<Bytes>>> {
        let Some(tokens) = &self.tokens else {
            return Err(unauthorized("bearer tokens are not accepted on this node"));
        };
        let claims = tokens.verify(token).map_err(|e| unauthorized(e.public_message()))?;
        let Some(profile) = query.and_then(|q| super::query_param(q, "profile")) else {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "an enrolment with a bearer token names its profile: ?profile=ID\n",
            ));
        };
        let (pki, id) = (self.pki.clone(), ca_id.to_owned());
        let decided = tokio::task::spawn_blocking(move || {
            let access = crate::auth::Access::resolve(&pki, claims).map_err(|e| e.to_string())?;
            let ca = pki.get_ca(&id).map_err(|e| e.to_string())?;
            let allowed = access.allows(crate::auth::CloudPkiPermission::ReadCas, &ca.scope_tags)
                && access.allows(crate::auth::CloudPkiPermission::ManageEnrolment, &ca.scope_tags);
            Ok::<_, String>(allowed.then_some(access.claims.sub))
        })
        .await;
        match decided {
            Ok(Ok(Some(principal))) => Ok((profile, principal)),
            Ok(Ok(None)) => Err(text(
                StatusCode::FORBIDDEN,
                "the token's principal may not manage enrolment on this CA\n",
            )),
            Ok(Err(why)) => Err(unauthorized(&why)),
            Err(_) => Err(text(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable\n")),
        }
    }
}

/// The DER of an EST enrolment body (base64, line breaks allowed).
pub fn decode_base64(body: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let clean: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean).ok()
}

/// csrattrs: the signature algorithm the CA itself uses, as the hash a
/// request should be signed with (RFC 7030 §4.5.2's AttrOrOID form).
fn csr_attributes(ca_der: &[u8]) -> Response<Full<Bytes>> {
    use der::{Decode, Encode};
    let oids = x509_cert::Certificate::from_der(ca_der)
        .map(|c| vec![c.signature_algorithm.oid])
        .unwrap_or_default();
    match oids.to_der() {
        Ok(der) => {
            let mut r = Response::new(Full::new(Bytes::from(base64_body(&der))));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/csrattrs"));
            r.headers_mut()
                .insert("content-transfer-encoding", HeaderValue::from_static("base64"));
            r
        }
        Err(_) => text(StatusCode::NO_CONTENT, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_path_forms_name_the_ca_and_operation() {
        assert_eq!(
            route("/.well-known/est/ca1/simpleenroll"),
            Some(("ca1", "simpleenroll"))
        );
        assert_eq!(route("/ca1/.well-known/est/cacerts"), Some(("ca1", "cacerts")));
        assert_eq!(route("/.well-known/est/simpleenroll"), None);
        assert_eq!(route("/a/b/.well-known/est/cacerts"), None);
        assert_eq!(route("/.well-known/est/ca1/x/y"), None);
    }

    #[test]
    fn basic_passwords_are_read() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic ZGV2aWNlOnMzY3IzdA=="),
        );
        assert_eq!(basic_password(&h).unwrap().as_str(), "s3cr3t");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(basic_password(&h).is_none());
    }
}
