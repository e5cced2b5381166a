//! Device enrolment at the edge: SCEP (RFC 8894) at `/scep/{caId}`.
//!
//! This module owns the protocol's HTTP shape (operations, content types)
//! and the one mapping from domain refusals to SCEP failInfo
//! ([`refusal_of`]). The CMS work is `x509::scep`; the decision is
//! `domain::Pki::enrol`. Served by nodes that hold keys (roles `all` and
//! `signer`).

pub mod est;
pub mod limit;

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

use crate::domain::{EnrolOutcome, EnrolRefusal, EnrolRequest, Pki, PkiError};
use crate::x509::scep::{self, FailInfo, MessageType, Refusal, Reply};

/// What GetCACaps advertises: exactly what is implemented. SHA-384 matters
/// beyond itself: strongSwan 5.9.8 (Debian 12) tests its capability flags
/// with enum values instead of bits, so it accepts SHA-256, AES and
/// Renewal only when the line in SHA-384's position is present.
const CA_CAPS: &str = "POSTPKIOperation\nSHA-256\nSHA-384\nSHA-512\nAES\nSCEPStandard\nRenewal\n";

/// Enrolment (SCEP, and EST on the TLS listener) of one node.
#[derive(Clone)]
pub struct Enrolment {
    pki: Arc<Pki>,
    limiter: Arc<limit::Limiter>,
    /// Content-encryption keys seen (see `scep::content_key_id`), with the
    /// message each came in and when.
    envelopes: Arc<Envelopes>,
    /// Bearer tokens for EST (the API's issuer), where the API is served.
    tokens: Option<Arc<crate::auth::TokenIssuer>>,
}

/// Content-key fingerprint → (fingerprint of the message it came in, when).
type Envelopes = dashmap::DashMap<[u8; 32], ([u8; 32], std::time::Instant)>;

/// How long a content key is remembered, and how many at most.
const ENVELOPE_MEMORY: std::time::Duration = std::time::Duration::from_secs(2 * 24 * 3600);
const MAX_ENVELOPES: usize = 200_000;

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment")
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// 429 with Retry-After: over a rate limit.
fn too_many(retry_after: u64) -> Response<Full<Bytes>> {
    let mut r = text(
        StatusCode::TOO_MANY_REQUESTS,
        "too many enrolment requests; retry later\n",
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn binary(content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The SCEP answer to a domain refusal or error: `Some` failInfo for what
/// the device did wrong (or may not do), `None` for our own failure (HTTP 503:
/// the device retries later).
pub fn refusal_of(e: &PkiError) -> Option<Refusal> {
    let r = |f, t: String| Some(Refusal::new(f, t));
    match e {
        PkiError::Enrolment(refusal) => {
            let fail = match refusal {
                EnrolRefusal::NotAllowed(_) | EnrolRefusal::Challenge(_) | EnrolRefusal::Replay => FailInfo::BadRequest,
                EnrolRefusal::ChallengeExpired(_) => FailInfo::BadTime,
                EnrolRefusal::Certificate(_) => FailInfo::BadCertId,
            };
            r(fail, refusal.to_string())
        }
        PkiError::Lifecycle(_) | PkiError::Invalid(_) | PkiError::Rejected(_) | PkiError::X509(_) => {
            r(FailInfo::BadRequest, e.to_string())
        }
        PkiError::NotFound { .. } | PkiError::AmbiguousSerial(_) => r(FailInfo::BadCertId, e.to_string()),
        _ => None,
    }
}

/// Splits `/scep/{caId}` (or `/scep/{caId}/pkiclient.exe`, as old clients
/// append) into the CA id.
fn ca_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/scep/")?;
    let id = rest.strip_suffix("/pkiclient.exe").unwrap_or(rest);
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

impl Enrolment {
    pub fn new(pki: Arc<Pki>, limits: limit::EnrolLimits) -> Self {
        Enrolment {
            pki,
            limiter: Arc::new(limit::Limiter::new(limits)),
            envelopes: Arc::new(dashmap::DashMap::new()),
            tokens: None,
        }
    }

    /// Accepts the API's bearer tokens for EST enrolment.
    pub fn with_tokens(mut self, tokens: Option<Arc<crate::auth::TokenIssuer>>) -> Self {
        self.tokens = tokens;
        self
    }

    /// Answers one SCEP request. `body` is the POST body (PKIOperation);
    /// `peer` the client's address (rate limits).
    pub async fn serve(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        body: Option<Bytes>,
        peer: Option<std::net::IpAddr>,
    ) -> Response<Full<Bytes>> {
        let Some(ca_id) = ca_of(path) else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let query = query.unwrap_or("");
        let operation = query_param(query, "operation").unwrap_or_default();
        if operation == "PKIOperation" {
            if let Some(Err(retry)) = peer.map(|ip| self.limiter.source(ip)) {
                return too_many(retry);
            }
        }
        match (method, operation.as_str()) {
            (&Method::GET, "GetCACaps") => {
                let pki = self.pki.clone();
                let id = ca_id.to_owned();
                match blocking(move || pki.ca_certificate(&id)).await {
                    Ok(_) => text(StatusCode::OK, CA_CAPS),
                    Err(e) => self.unavailable(&e),
                }
            }
            (&Method::GET, "GetCACert") => self.get_ca_cert(ca_id).await,
            (&Method::GET, "PKIOperation") => {
                let Some(message) = query_param(query, "message") else {
                    return text(StatusCode::BAD_REQUEST, "PKIOperation needs a message parameter\n");
                };
                // Form encoding may have turned base64's '+' into ' '.
                let message: String = message.chars().filter(|c| !c.is_whitespace() || *c == ' ').collect();
                let message = message.replace(' ', "+");
                use base64::Engine as _;
                match base64::engine::general_purpose::STANDARD.decode(message.trim_end_matches('\n')) {
                    Ok(der) => self.pki_operation(ca_id, der).await,
                    Err(_) => text(StatusCode::BAD_REQUEST, "the message parameter is not base64\n"),
                }
            }
            (&Method::POST, "PKIOperation") => match body {
                Some(b) => self.pki_operation(ca_id, b.to_vec()).await,
                None => text(StatusCode::BAD_REQUEST, "empty PKIOperation\n"),
            },
            (&Method::GET | &Method::POST, "") => text(StatusCode::BAD_REQUEST, "missing operation parameter\n"),
            (&Method::GET | &Method::POST, _) => text(StatusCode::BAD_REQUEST, "unsupported SCEP operation\n"),
            _ => {
                let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
                r
            }
        }
    }

    fn unavailable(&self, e: &PkiError) -> Response<Full<Bytes>> {
        match e {
            PkiError::NotFound { .. } => text(StatusCode::NOT_FOUND, "no such certification authority\n"),
            PkiError::Invalid(m) => text(StatusCode::NOT_FOUND, format!("{m}\n")),
            other => {
                tracing::warn!(error = %other, "SCEP request failed");
                text(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable\n")
            }
        }
    }

    async fn get_ca_cert(&self, ca_id: &str) -> Response<Full<Bytes>> {
        let pki = self.pki.clone();
        let id = ca_id.to_owned();
        let got = blocking(move || {
            let ca = pki.ca_certificate(&id)?;
            let chain = pki.ca_chain(&id)?;
            let ra = pki.scep_ra(&id)?;
            Ok((ca, chain, ra))
        })
        .await;
        match got {
            // The RA, the CA and its chain up to the root (a DER SET: in
            // no particular order; clients tell the RA by its missing cA
            // flag and its key usages, and strongSwan's `pki --scepca`
            // establishes trust from the root in the reply).
            Ok((ca, chain, Some(ras))) => match scep::certs_only(
                &[
                    ras.current().map(|r| r.cert_der.clone()).into_iter().collect(),
                    vec![ca],
                    chain,
                ]
                .concat(),
                None,
            ) {
                Ok(der) => binary("application/x-x509-ca-ra-cert", der),
                Err(e) => self.unavailable(&e.into()),
            },
            Ok((ca, _, None)) => binary("application/x-x509-ca-cert", ca),
            Err(e) => self.unavailable(&e),
        }
    }

    async fn pki_operation(&self, ca_id: &str, der: Vec<u8>) -> Response<Full<Bytes>> {
        let this = self.clone();
        let id = ca_id.to_owned();
        match blocking(move || this.operate(&id, &der)).await {
            Ok(Operated::CertRep(rep)) => binary("application/x-pki-message", rep),
            Ok(Operated::NotScep(why)) => text(StatusCode::BAD_REQUEST, format!("not a SCEP pkiMessage: {why}\n")),
            Ok(Operated::NoRa) => text(
                StatusCode::FORBIDDEN,
                "this certification authority does not enrol devices (no SCEP RA: not an active issuing CA)\n",
            ),
            Err(e) => self.unavailable(&e),
        }
    }
}

/// The outcome of one PKIOperation.
#[derive(Debug)]
pub enum Operated {
    /// The CertRep to send (SUCCESS or FAILURE with its failInfo).
    CertRep(Vec<u8>),
    /// Not even a header could be read: no transaction to answer.
    NotScep(String),
    /// The CA has no RA (a root, or one that cannot issue).
    NoRa,
}

impl Enrolment {
    /// Answers one PKIOperation (blocking: it may sign and commit). `Err` is
    /// our own failure (the store), never the device's.
    pub fn operate(&self, ca_id: &str, der: &[u8]) -> Result<Operated, PkiError> {
        operate(self, ca_id, der)
    }

    /// False when the envelope's content key came before in another
    /// message: an exact resend (a lost reply) passes, a tampered copy not.
    fn fresh_envelope(&self, content: &[u8], message: &[u8]) -> bool {
        let Some(key) = scep::content_key_id(content) else {
            return true; // unreadable: `open` refuses it the same way for all
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        let mut msg = [0u8; 32];
        msg.copy_from_slice(digest.as_ref());
        let now = std::time::Instant::now();
        if self.envelopes.len() > MAX_ENVELOPES {
            self.envelopes
                .retain(|_, (_, at)| now.duration_since(*at) < ENVELOPE_MEMORY);
        }
        match self.envelopes.entry(key) {
            dashmap::Entry::Occupied(seen) => seen.get().0 == msg,
            dashmap::Entry::Vacant(v) => {
                v.insert((msg, now));
                true
            }
        }
    }
}

fn operate(enrolment: &Enrolment, ca_id: &str, der: &[u8]) -> Result<Operated, PkiError> {
    let (pki, limiter) = (enrolment.pki.as_ref(), enrolment.limiter.as_ref());
    let mut request = match scep::parse(der) {
        Ok(r) => r,
        Err(e) => return Ok(Operated::NotScep(e.to_string())),
    };
    if let Ok(content) = &request.verified {
        if !enrolment.fresh_envelope(content, der) {
            request.verified = Err(Refusal::new(
                FailInfo::BadMessageCheck,
                "the enveloped content cannot be read",
            ));
        }
    }
    let Some(ras) = pki.scep_ra(ca_id)? else {
        return Ok(Operated::NoRa);
    };
    let aes = scep::ContentCipher::Aes128;
    let (decision, which) = decide(pki, limiter, ca_id, &ras, &request);
    // The reply is signed by the RA the request was encrypted to.
    let Some(ra) = ras.ras.get(which) else {
        return Ok(Operated::NoRa);
    };
    let (certs, crl, cipher, failure, pending) = match decision {
        Decision::Issued(certs, cipher) => (certs, None, cipher, None, false),
        Decision::Crl(crl, cipher) => (Vec::new(), Some(crl), cipher, None, false),
        Decision::Pending => (Vec::new(), None, aes, None, true),
        Decision::Refused(r) => (Vec::new(), None, aes, Some(r), false),
        Decision::Error(e) => return Err(e),
    };
    let reply = match (&failure, pending, &crl) {
        (Some(r), _, _) => Reply::Failure(r),
        (None, true, _) => Reply::Pending,
        (None, false, Some(crl)) => Reply::SuccessCrl { crl, cipher },
        (None, false, None) => Reply::Success { certs: &certs, cipher },
    };
    Ok(Operated::CertRep(scep::cert_rep(
        &ra.key,
        &ra.cert,
        &request.header,
        reply,
        pki.now(),
    )?))
}

enum Decision {
    Issued(Vec<Vec<u8>>, scep::ContentCipher),
    /// GetCRL's answer.
    Crl(Vec<u8>, scep::ContentCipher),
    Pending,
    Refused(Refusal),
    Error(PkiError),
}

impl Decision {
    fn of(outcome: Result<EnrolOutcome, PkiError>, cipher: scep::ContentCipher) -> Self {
        match outcome {
            // Only the issued certificate: a SET has no order, and some
            // clients take the first certificate as theirs.
            Ok(EnrolOutcome::Issued(done)) => Decision::Issued(vec![done.der], cipher),
            Ok(EnrolOutcome::Pending { .. }) => Decision::Pending,
            Err(e) => match refusal_of(&e) {
                Some(r) => Decision::Refused(r),
                None => Decision::Error(e),
            },
        }
    }
}

/// Decides a parsed, RA-addressed request; also says which RA opened it.
fn decide(
    pki: &Pki,
    limiter: &limit::Limiter,
    ca_id: &str,
    ras: &crate::domain::ScepRas,
    request: &scep::Request,
) -> (Decision, usize) {
    let content = match &request.verified {
        Ok(c) => c,
        Err(r) => return (Decision::Refused(r.clone()), 0),
    };
    let keys: Vec<_> = ras.ras.iter().map(|r| (&r.cert, &r.decryptor)).collect();
    let (inner, cipher, which) = match scep::open(content, &keys) {
        Ok(x) => x,
        Err(r) => return (Decision::Refused(r), 0),
    };
    (decide_opened(pki, limiter, ca_id, request, &inner, cipher), which)
}

fn decide_opened(
    pki: &Pki,
    limiter: &limit::Limiter,
    ca_id: &str,
    request: &scep::Request,
    inner: &[u8],
    cipher: scep::ContentCipher,
) -> Decision {
    let header = &request.header;
    // Every reply that carries a certificate or CRL is encrypted to the
    // signer's key, which SCEP's key transport needs to be RSA: refuse
    // anything else before issuing what could never be delivered.
    let answerable = header.signer.public_key.algorithm.oid == crate::x509::oids::RSA_ENCRYPTION;
    if !answerable && header.message_type != MessageType::CertRep {
        return Decision::Refused(Refusal::new(
            FailInfo::BadAlg,
            "SCEP replies are encrypted to the requester's key, which must be RSA (EST serves EC devices)",
        ));
    }
    match header.message_type {
        MessageType::PkcsReq | MessageType::RenewalReq => {
            let renewing = header.message_type == MessageType::RenewalReq;
            if !renewing {
                // A first request is signed by a self-signed certificate of
                // the very key it asks a certificate for.
                let same_key = <x509_cert::request::CertReq as der::Decode>::from_der(inner)
                    .map(|csr| csr.info.public_key == header.signer.public_key)
                    .unwrap_or(false);
                if !same_key {
                    return Decision::Refused(Refusal::new(
                        FailInfo::BadMessageCheck,
                        "PKCSReq must be signed with the requested key",
                    ));
                }
            }
            if let Some(Err(retry)) = crate::x509::csr::challenge_password(inner).map(|c| limiter.challenge(&c.0)) {
                return Decision::Refused(Refusal::new(
                    FailInfo::BadRequest,
                    format!("too many requests with this challenge; retry in {retry} s"),
                ));
            }
            let req = EnrolRequest {
                csr: inner.to_vec(),
                renewing: renewing.then(|| header.signer_cert_der.clone()),
                challenge: None,
                authorised_profile: None,
                transaction_id: header.transaction_id.clone(),
                nonce: Some(header.sender_nonce.clone()),
                protocol: "scep",
            };
            Decision::of(pki.enrol(ca_id, &req), cipher)
        }
        MessageType::GetCert => {
            let found = scep::issuer_and_serial(inner).map_err(PkiError::from).and_then(|ias| {
                let serial = crate::x509::hex_upper(ias.serial_number.as_bytes());
                pki.find_leaf_by_serial(Some(ca_id), &serial)
                    .and_then(|leaf| pki.get_leaf(&leaf.id))
            });
            match found {
                Ok((_, der)) => Decision::Issued(vec![der], cipher),
                Err(e) => match refusal_of(&e) {
                    Some(r) => Decision::Refused(r),
                    None => Decision::Error(e),
                },
            }
        }
        // A request waiting for approval: its transactionID names it (the
        // IssuerAndSubject inside says nothing more).
        MessageType::CertPoll => Decision::of(pki.poll_enrolment(ca_id, &header.transaction_id), cipher),
        MessageType::GetCrl => {
            let crl = scep::issuer_and_serial(inner)
                .map_err(PkiError::from)
                .and_then(|ias| pki.crl_for_certificate(ca_id, &crate::x509::hex_upper(ias.serial_number.as_bytes())));
            match crl {
                Ok(crl) => Decision::Crl(crl, cipher),
                Err(e) => match refusal_of(&e) {
                    Some(r) => Decision::Refused(r),
                    None => Decision::Error(e),
                },
            }
        }
        MessageType::CertRep => Decision::Refused(Refusal::new(FailInfo::BadRequest, "a CertRep is not a request")),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, PkiError> + Send + 'static) -> Result<T, PkiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(_) => Err(PkiError::Store(crate::store::StoreError::Backend(
            "an enrolment task failed".into(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_ids_from_paths() {
        assert_eq!(ca_of("/scep/abc"), Some("abc"));
        assert_eq!(ca_of("/scep/abc/pkiclient.exe"), Some("abc"));
        assert_eq!(ca_of("/scep/"), None);
        assert_eq!(ca_of("/scep/a/b"), None);
    }

    #[test]
    fn a_content_key_seen_in_another_message_is_refused_an_exact_resend_is_not() {
        use crate::x509::scep::{device, ClientRequest, ContentCipher, MessageType};
        use crate::x509::{HashAlgorithm, KeyAlgorithm, SoftwareKey};
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::config::open(&crate::config::OpenOptions::new(dir.path().to_path_buf())).unwrap();
        let e = Enrolment::new(Arc::new(pki), limit::EnrolLimits::default());
        let (key, _) = SoftwareKey::generate(KeyAlgorithm::Rsa2048, HashAlgorithm::Sha256).unwrap();
        let cert = device::self_signed(&key, "probe").unwrap();
        let message = scep::client_request(&ClientRequest {
            message_type: MessageType::PkcsReq,
            inner: b"x",
            signer: &key,
            signer_cert: &cert,
            ra_cert: &cert,
            transaction_id: "T",
            sender_nonce: [1; 16],
            cipher: ContentCipher::Aes128,
        })
        .unwrap();
        let content = scep::parse(&message).unwrap().verified.unwrap();
        assert!(e.fresh_envelope(&content, &message));
        assert!(e.fresh_envelope(&content, &message), "an exact resend (a lost reply)");
        let mut probe = message.clone();
        let n = probe.len();
        probe[n - 1] ^= 1; // another message around the same envelope
        assert!(!e.fresh_envelope(&content, &probe));
    }

    #[test]
    fn query_parameters_are_percent_decoded() {
        assert_eq!(
            query_param("operation=PKIOperation&message=ab%2Bc%3D", "message").as_deref(),
            Some("ab+c=")
        );
        assert_eq!(query_param("operation=GetCACaps", "message"), None);
    }
}
