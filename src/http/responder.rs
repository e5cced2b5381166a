//! The public revocation routes: CRL, AIA and OCSP, read from the snapshot.
//!
//! These are exactly the URLs certificates carry:
//! - `GET /crls/{caId}_v{version}/current.crl`, `…/{partition}.crl`, their
//!   delta CRLs `…/current-delta.crl`, `…/{partition}-delta.crl`, and
//!   `…/partitions.json` (every complete CRL URL of the CA, CCADB's format)
//! - `GET /cacerts/{caId}_v{version}/cert.cer` (also `cert.pem`, `chain.p7c`)
//! - `POST /ocsp`, `GET /ocsp/{base64 request}`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dashmap::DashMap;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::Semaphore;

use crate::snapshot::{self, CaState, CrlScopeKey, Document, OcspDecision, Outcome, Published, SerialKey};
use crate::x509::ocsp::{self, CertIdHash, ErrorAnswer, Status};

pub type Body = Full<Bytes>;

/// How much on-demand OCSP signing may happen (nonces, unknown serials).
#[derive(Debug, Clone, Copy)]
pub struct SigningLimits {
    /// Signatures in flight at once.
    pub concurrency: usize,
    /// Requests allowed to wait for a slot; past this, `tryLater`.
    pub queue: usize,
    /// How long an on-demand `unknown` answer is reused.
    pub unknown_ttl: Duration,
}

impl Default for SigningLimits {
    fn default() -> Self {
        SigningLimits {
            concurrency: 2,
            queue: 64,
            unknown_ttl: Duration::from_secs(60),
        }
    }
}

/// Responder state shared by all connections.
pub struct Responder {
    /// Caps the max-age of OCSP GET answers (seconds): how long a cache in
    /// front may keep serving an answer after its certificate was revoked.
    /// None: until nextUpdate, as RFC 5019 allows.
    pub ocsp_max_age: Option<i64>,
    pub published: Published,
    pub sync: Arc<crate::snapshot::SyncState>,
    pub metrics: Arc<crate::observability::Metrics>,
    pub ocsp_validity: time::Duration,
    limits: SigningLimits,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    unknown_cache: DashMap<(Arc<str>, SerialKey, CertIdHash), (Bytes, Instant)>,
}

impl Responder {
    pub fn new(
        published: Published,
        sync: Arc<crate::snapshot::SyncState>,
        metrics: Arc<crate::observability::Metrics>,
        ocsp_validity: time::Duration,
        limits: SigningLimits,
    ) -> Self {
        Responder {
            ocsp_max_age: None,
            published,
            sync,
            metrics,
            ocsp_validity,
            permits: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            limits,
            waiting: AtomicUsize::new(0),
            unknown_cache: DashMap::new(),
        }
    }
}

/// Rendered header values kept per worker thread (no lock): answers signed
/// in one batch share their dates, and max-age values repeat every second.
/// Direct-mapped by a multiplicative hash of the key: a slot is a compare
/// away, where a `HashMap` hashed each key with SipHash three times an answer.
struct Memo([Option<(i64, HeaderValue)>; MEMO_SLOTS]);

const MEMO_SLOTS: usize = 1024;

impl Default for Memo {
    fn default() -> Self {
        Memo(std::array::from_fn(|_| None))
    }
}

thread_local! {
    static DATES: std::cell::RefCell<Memo> = Default::default();
    static MAX_AGES: std::cell::RefCell<Memo> = Default::default();
}

fn memo(
    cache: &'static std::thread::LocalKey<std::cell::RefCell<Memo>>,
    key: i64,
    render: impl FnOnce() -> String,
) -> HeaderValue {
    let slot = ((key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize % MEMO_SLOTS;
    cache.with(|c| {
        let mut c = c.borrow_mut();
        let Some(entry) = c.0.get_mut(slot) else {
            return HeaderValue::from_static("");
        };
        match entry {
            Some((k, v)) if *k == key => v.clone(),
            _ => {
                let v = HeaderValue::from_str(&render()).unwrap_or_else(|_| HeaderValue::from_static(""));
                *entry = Some((key, v.clone()));
                v
            }
        }
    })
}

fn date_header(unix: i64) -> HeaderValue {
    memo(&DATES, unix, || http_date(unix))
}

fn cache_control(max_age: i64) -> HeaderValue {
    memo(&MAX_AGES, max_age, || {
        format!("max-age={max_age}, public, no-transform, must-revalidate")
    })
}

fn http_date(unix: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    httpdate::fmt_http_date(t)
}

fn now_unix() -> i64 {
    unix_seconds(SystemTime::now())
}

/// Whole seconds since the epoch (0 before it).
pub fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// True when the request's validators say the client's copy is current.
///
/// `If-None-Match` (the ETag is derived from the bytes) decides whenever it
/// is sent. `If-Modified-Since` alone is only trusted when the date names a
/// second after the representation's `Last-Modified` second (`last_modified`
/// None: no date validator, never trusted): two CRLs or OCSP answers signed
/// in the same second share that second, so a client holding the older one
/// must not be told it is current (RFC 9110 §8.8.2.2, weak date validators).
fn not_modified(req: &HeaderMap, etag: &str, last_modified: Option<i64>) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    }
    let (Some(last_modified), Some(ims)) = (last_modified, req.get(header::IF_MODIFIED_SINCE)) else {
        return false;
    };
    match ims.to_str().ok().and_then(|v| httpdate::parse_http_date(v).ok()) {
        Some(t) => {
            let secs = t
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            secs > last_modified
        }
        None => false,
    }
}

/// A document with RFC 5019 §6 caching headers (and 304 on a conditional GET).
fn cached(req: &HeaderMap, doc: &Document, content_type: &'static str, max_age_cap: Option<i64>) -> Response<Body> {
    let dated = Dated {
        body: &doc.body,
        this_update: doc.this_update,
        next_update: doc.next_update,
        etag: &doc.etag,
    };
    cached_at(req, &dated, content_type, max_age_cap, now_unix())
}

/// What [`cached_at`] needs of a document, borrowed.
struct Dated<'a> {
    body: &'a Bytes,
    this_update: i64,
    next_update: i64,
    etag: &'a str,
}

fn cached_at(
    req: &HeaderMap,
    doc: &Dated<'_>,
    content_type: &'static str,
    max_age_cap: Option<i64>,
    now: i64,
) -> Response<Body> {
    let mut max_age = (doc.next_update - now).max(0);
    if let Some(cap) = max_age_cap {
        max_age = max_age.min(cap);
    }
    // A zero thisUpdate marks a document without a date validator (AIA).
    let last_modified = (doc.this_update > 0).then_some(doc.this_update);
    let fresh = not_modified(req, doc.etag, last_modified);
    let mut r = Response::new(if fresh {
        Full::default()
    } else {
        Full::new(doc.body.clone())
    });
    if fresh {
        *r.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, cache_control(max_age));
    if let Some(t) = last_modified {
        h.insert(header::LAST_MODIFIED, date_header(t));
    }
    h.insert(header::EXPIRES, date_header(doc.next_update));
    set(h, header::ETAG, doc.etag);
    r
}

fn bytes_response(body: Bytes, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Splits `{caId}_v{version}` into its parts.
fn ca_and_version(segment: &str) -> Option<(&str, i32)> {
    let (id, v) = segment.rsplit_once("_v")?;
    Some((id, v.parse().ok().filter(|v: &i32| *v > 0)?))
}

/// Serves `/crls/...` and `/cacerts/...`; None when the path is not one of them.
pub fn serve_document(r: &Responder, path: &str, headers: &HeaderMap) -> Option<(&'static str, Response<Body>)> {
    let snap = r.published.load();
    if let Some(rest) = path.strip_prefix("/crls/") {
        let (segment, file) = rest.split_once('/')?;
        let ca = ca_and_version(segment).and_then(|(id, v)| snap.ca_version(id, v));
        if file == "partitions.json" {
            let resp = match ca {
                Some(ca) => partitions(headers, &ca.partitions_json),
                None => plain(StatusCode::NOT_FOUND, "no such CA\n"),
            };
            return Some(("crl", resp));
        }
        let resp = match (ca, crl_partition(file)) {
            (Some(ca), Some(p)) => match ca.crls.get(&p) {
                // A CRL is re-signed on every revocation: let caches keep it one minute at most.
                Some(crl) => cached(headers, &crl.doc, "application/pkix-crl", Some(60)),
                None => plain(StatusCode::NOT_FOUND, "no such CRL\n"),
            },
            _ => plain(StatusCode::NOT_FOUND, "no such CRL\n"),
        };
        return Some(("crl", resp));
    }
    if let Some(rest) = path.strip_prefix("/cacerts/") {
        let (segment, file) = rest.split_once('/')?;
        let Some(ca) = ca_and_version(segment).and_then(|(id, v)| snap.ca_version(id, v)) else {
            return Some(("aia", plain(StatusCode::NOT_FOUND, "no such CA certificate\n")));
        };
        let resp = match file {
            "cert.cer" => aia(headers, &ca.cert_der, "application/pkix-cert"),
            "cert.pem" => aia(headers, &ca.cert_pem, "application/x-pem-file"),
            "chain.p7c" => aia(headers, &ca.chain_p7c, "application/pkcs7-mime"),
            _ => plain(StatusCode::NOT_FOUND, "not found\n"),
        };
        return Some(("aia", resp));
    }
    None
}

/// The CRL a file name stands for: `current.crl` is partition 0, `N.crl`
/// (a positive decimal, no leading zero) partition N, and `…-delta.crl`
/// their delta CRLs.
fn crl_partition(file: &str) -> Option<CrlScopeKey> {
    let name = file.strip_suffix(".crl")?;
    let (name, delta) = match name.strip_suffix("-delta") {
        Some(n) => (n, true),
        None => (name, false),
    };
    let partition = if name == "current" {
        0
    } else if name.starts_with('0') || name.len() > 5 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    } else {
        name.parse().ok()?
    };
    Some(CrlScopeKey { partition, delta })
}

fn partitions(headers: &HeaderMap, doc: &snapshot::AiaDocument) -> Response<Body> {
    // Partitions are added for new issuance: crawlers should look again
    // within the hour. No Last-Modified: the ETag validates it.
    let doc = Document {
        etag: doc.etag.clone(),
        body: doc.body.clone(),
        this_update: 0,
        next_update: now_unix() + 3_600,
    };
    cached(headers, &doc, "application/json", None)
}

fn aia(headers: &HeaderMap, doc: &snapshot::AiaDocument, content_type: &'static str) -> Response<Body> {
    // CA certificates never change under a given version: cache them a day.
    // No Last-Modified, so If-Modified-Since is never trusted.
    let doc = Document {
        etag: doc.etag.clone(),
        body: doc.body.clone(),
        this_update: 0,
        next_update: now_unix() + 86_400,
    };
    cached(headers, &doc, content_type, None)
}

/// Decodes the request from `GET /ocsp/{...}` (RFC 6960 appendix A.1),
/// tolerating what clients and proxies do to it: percent-encoding (`%2B`,
/// `%2F`, `%3D`), `+` turned into a space, missing padding, URL-safe base64.
pub fn decode_get_path(raw: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; get_buffer_len(raw)];
    decode_get_path_into(raw, &mut buf).map(<[u8]>::to_vec)
}

/// The longest `GET /ocsp/…` suffix decoded (the URL limit).
const MAX_GET_PATH: usize = 4096;

/// The buffer [`decode_get_path_into`] needs for `raw`: the decoded
/// request is never longer than the text.
pub fn get_buffer_len(raw: &str) -> usize {
    raw.len()
}

/// Marks bytes outside the base64 alphabet in [`SEXTET`].
const NOT_BASE64: u8 = 0xff;
/// Marks the bytes [`decode_get_path_into`] drops: padding and line breaks.
const SKIPPED: u8 = 0xfe;

/// Each byte's sextet, the standard and URL-safe alphabets together, with
/// what clients do to a path folded in: `+` sent as a space, padding and
/// line breaks (dropped; the sextet count decides the length).
const SEXTET: [u8; 256] = {
    let mut t = [NOT_BASE64; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b' ' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t[b'=' as usize] = SKIPPED;
    t[b'\r' as usize] = SKIPPED;
    t[b'\n' as usize] = SKIPPED;
    t[b'\t' as usize] = SKIPPED;
    t
};

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// [`decode_get_path`] into a caller's buffer (at least
/// [`get_buffer_len`]): no allocation on the hot path.
///
/// One pass: a `%XX` escape is decoded and then read like any other
/// byte, each byte is looked up in [`SEXTET`], and the bits are gathered
/// into octets. As strict as decoding canonical base64 after cleaning the
/// text: a lone sextet left over, or bits left over that are not zero,
/// refuse the path (a property test holds it to the two-pass decoder it
/// replaced, percent-decoding then the `base64` crate).
///
/// Eight bytes that are all plain sextets (most of a path: clients escape
/// only `+`, `/` and `=`) are taken at once, with one branch instead of
/// eight; byte by byte this was ~4 % of a GET's CPU on one core.
pub fn decode_get_path_into<'b>(raw: &str, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let raw = raw.as_bytes();
    if raw.is_empty() || raw.len() > MAX_GET_PATH || buf.len() < raw.len() {
        return None;
    }
    let mut out = Octets {
        buf,
        acc: 0,
        bits: 0,
        sextets: 0,
        n: 0,
    };
    let mut i = 0;
    while i < raw.len() {
        // How many bytes from `i` are plain sextets, up to eight.
        let mut plain = 0;
        if let Some(&eight) = raw.get(i..).and_then(|r| r.first_chunk::<8>()) {
            let v = eight.map(|b| SEXTET[usize::from(b)]);
            // NOT_BASE64 and SKIPPED both have the top bit; no sextet has.
            let marked = v.iter().fold(0u8, |m, &v| m | v) & 0x80;
            if marked == 0 {
                // Shifted each on its own, not through one chain of eight.
                let gathered = v
                    .iter()
                    .enumerate()
                    .fold(0u64, |g, (j, &v)| g | u64::from(v) << (42 - 6 * j));
                out.push48(gathered)?;
                i += 8;
                continue;
            }
            plain = v.iter().take_while(|&&v| v & 0x80 == 0).count();
        }
        for &b in raw.get(i..i + plain)? {
            out.push(SEXTET[usize::from(b)])?;
        }
        i += plain;
        // The byte that needs a look: an escape, padding, a line break, a
        // byte outside the alphabet, or one of the last seven.
        let Some(&c) = raw.get(i) else { break };
        i += 1;
        let c = match c {
            b'%' => match (
                raw.get(i).copied().and_then(hex_digit),
                raw.get(i + 1).copied().and_then(hex_digit),
            ) {
                (Some(hi), Some(lo)) => {
                    i += 2;
                    hi << 4 | lo
                }
                _ => return None, // a bare '%' is no base64 character
            },
            c => c,
        };
        match SEXTET[usize::from(c)] {
            SKIPPED => {}
            NOT_BASE64 => return None,
            v => out.push(v)?,
        }
    }
    // Two or three sextets end a quantum with 4 or 2 bits to spare, which
    // canonical base64 leaves zero; one cannot end it.
    if out.sextets % 4 == 1 || out.acc != 0 {
        return None;
    }
    let n = out.n;
    Some(&out.buf[..n])
}

/// Sextets gathered into octets for [`decode_get_path_into`]. `bits` < 8
/// between pushes, so `acc` never holds more than 7 + 48 bits.
struct Octets<'b> {
    buf: &'b mut [u8],
    acc: u64,
    bits: u32,
    sextets: usize,
    n: usize,
}

impl Octets<'_> {
    #[inline]
    fn push(&mut self, v: u8) -> Option<()> {
        self.acc = self.acc << 6 | u64::from(v);
        self.bits += 6;
        self.sextets += 1;
        if self.bits >= 8 {
            self.bits -= 8;
            *self.buf.get_mut(self.n)? = (self.acc >> self.bits) as u8;
            self.n += 1;
            self.acc &= (1 << self.bits) - 1;
        }
        Some(())
    }

    /// Eight sextets, gathered: exactly six octets out, in one store.
    #[inline]
    fn push48(&mut self, gathered: u64) -> Option<()> {
        // The bits left from before lead; six whole octets follow them.
        let six = (self.acc << 48 | gathered) >> self.bits;
        self.buf
            .get_mut(self.n..self.n + 6)?
            .copy_from_slice(&six.to_be_bytes()[2..]);
        self.n += 6;
        self.sextets += 8;
        self.acc = gathered & ((1 << self.bits) - 1);
        Some(())
    }
}

/// Where OCSP requests are POSTed (RFC 6960 A.1: the responder's URL).
pub fn is_ocsp_post_path(path: &str) -> bool {
    path == "/ocsp" || path == "/ocsp/"
}

fn ocsp_body(body: Bytes) -> Response<Body> {
    bytes_response(body, "application/ocsp-response")
}

fn ocsp_uncacheable(body: Bytes, no_store: bool) -> Response<Body> {
    let mut r = ocsp_body(body);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if no_store { "no-store" } else { "max-age=0, no-cache" }),
    );
    r
}

impl Responder {
    fn outcome(&self, o: Outcome) {
        self.metrics.observe_outcome(o.name());
    }

    fn error(&self, answer: ErrorAnswer, outcome: Outcome) -> Response<Body> {
        self.outcome(outcome);
        ocsp_uncacheable(Bytes::from_static(answer.der()), false)
    }

    /// The common request (one SHA-1 or SHA-256 CertID, nothing else)
    /// answered from its pre-signed bytes without allocating but for the
    /// response. None: [`Responder::ocsp`]'s general path decides.
    fn ocsp_simple(&self, der: &[u8], get: bool, headers: &HeaderMap, now: i64) -> Option<Response<Body>> {
        let q = ocsp::parse_simple(der)?;
        let snap = self.published.load();
        if !snap.ready {
            return None;
        }
        let (body, this_update, next_update, outcome) = snap.answer_simple(&q, now)?;
        if next_update <= now {
            return None; // the general path answers tryLater
        }
        self.outcome(outcome);
        Some(if get {
            let etag = snapshot::Etag::of(&body);
            let dated = Dated {
                body: &body,
                this_update,
                next_update,
                etag: etag.as_str(),
            };
            cached_at(headers, &dated, "application/ocsp-response", self.ocsp_max_age, now)
        } else {
            ocsp_body(body)
        })
    }

    /// A GET's answer when it needs no more than the pre-signed bytes
    /// (see [`Responder::ocsp_simple`]); None for anything else, malformed
    /// requests included, which [`Responder::serve_ocsp_get`] then answers.
    /// `now`: unix seconds, read by the caller (which times the request
    /// with the same clock reading).
    pub fn ocsp_get_at_once(&self, raw: &str, headers: &HeaderMap, now: i64) -> Option<Response<Body>> {
        let mut small = [0u8; 1024];
        if get_buffer_len(raw) > small.len() {
            return None;
        }
        let der = decode_get_path_into(raw, &mut small)?;
        self.ocsp_simple(der, true, headers, now)
    }

    /// A POST's answer when it needs no more than the pre-signed bytes
    /// (see [`Responder::ocsp_simple`]); None for anything else, another
    /// path included ([`Responder::ocsp_post_general`] answers those).
    pub fn ocsp_post_at_once(&self, path: &str, der: &[u8]) -> Option<Response<Body>> {
        if !is_ocsp_post_path(path) {
            return None;
        }
        self.ocsp_simple(der, false, &HeaderMap::new(), now_unix())
    }

    /// A POSTed request that [`Responder::ocsp_post_at_once`] left
    /// unanswered: 404 off the POST path, else the general path (the
    /// pre-signed bytes were already tried).
    pub async fn ocsp_post_general(&self, path: &str, der: &[u8]) -> Response<Body> {
        if !is_ocsp_post_path(path) {
            return plain(StatusCode::NOT_FOUND, "not found\n");
        }
        // Boxed: the general path's future (signing on demand) is most of
        // the request future's size, and hyper moves that future into place
        // for every request, the common ones included.
        Box::pin(self.ocsp_general(der, false, &HeaderMap::new())).await
    }

    /// Any request: parsed whole, decided by the snapshot, signed on demand
    /// where nothing pre-signed fits.
    async fn ocsp_general(&self, der: &[u8], get: bool, headers: &HeaderMap) -> Response<Body> {
        let req = match ocsp::parse_request(der) {
            Ok(r) => r,
            Err(_) => return self.error(ErrorAnswer::MalformedRequest, Outcome::Malformed),
        };
        let snap = self.published.load();
        if !snap.ready {
            return self.error(ErrorAnswer::TryLater, Outcome::TryLater);
        }
        match snap.answer_ocsp(&req, now_unix()) {
            OcspDecision::Error(answer, outcome) => self.error(answer, outcome),
            // Never an answer past its nextUpdate (a responder serving an old
            // snapshot while the store is away): a relying party would reject
            // it, and it may no longer be true.
            OcspDecision::Ready { next_update, .. } if next_update <= now_unix() => {
                self.error(ErrorAnswer::TryLater, Outcome::TryLater)
            }
            OcspDecision::Ready {
                body,
                this_update,
                next_update,
                outcome,
            } => {
                self.outcome(outcome);
                self.ready(body, this_update, next_update, get, headers)
            }
            OcspDecision::Sign {
                keep: Some(state),
                ca,
                answers,
                nonce: _,
                outcome,
            } => {
                // A leaf's first SHA-256 question: signed with the state's
                // thisUpdate and nextUpdate, then kept beside its SHA-1 answer,
                // and from then on served like it (until its own nextUpdate:
                // then signed again). Two racing first questions both sign;
                // either answer is right.
                let basis = time::OffsetDateTime::from_unix_timestamp(state.this_update())
                    .ok()
                    .map(|t| (t, time::Duration::seconds(state.next_update() - state.this_update())));
                match self.sign_on_demand(ca, answers, None, basis).await {
                    Some((body, next_update)) => {
                        self.outcome(outcome);
                        state.keep_sha256(body.clone(), next_update);
                        self.ready(body, state.this_update(), next_update, get, headers)
                    }
                    None => {
                        self.metrics.on_demand_rejected.inc();
                        self.error(ErrorAnswer::TryLater, Outcome::TryLater)
                    }
                }
            }
            OcspDecision::Sign {
                keep: None,
                ca,
                answers,
                nonce,
                outcome,
            } => {
                // Cache key for a plain single `unknown` question.
                let cache_key = match (&answers[..], &nonce) {
                    ([a], None) if a.status == Status::Unknown => {
                        let hash = CertIdHash::from_oid(&a.cert_id.hash_algorithm.oid);
                        let serial = SerialKey::new(a.cert_id.serial_number.as_bytes());
                        hash.zip(serial).map(|(h, s)| (ca.id.clone(), s, h))
                    }
                    _ => None,
                };
                if let Some(key) = &cache_key {
                    if let Some(hit) = self.unknown_cache.get(key) {
                        if hit.1 > Instant::now() {
                            self.outcome(outcome);
                            return ocsp_uncacheable(hit.0.clone(), false);
                        }
                    }
                }
                match self.sign_on_demand(ca, answers, nonce.clone(), None).await {
                    Some((body, _)) => {
                        self.outcome(outcome);
                        if let Some(key) = cache_key {
                            // Bounded: a flood of random serials must not grow memory.
                            if self.unknown_cache.len() >= 100_000 {
                                self.unknown_cache.clear();
                            }
                            self.unknown_cache
                                .insert(key, (body.clone(), Instant::now() + self.limits.unknown_ttl));
                        }
                        ocsp_uncacheable(body, nonce.is_some())
                    }
                    None => {
                        let _ = outcome; // what it would have been; it is tryLater
                        self.metrics.on_demand_rejected.inc();
                        self.error(ErrorAnswer::TryLater, Outcome::TryLater)
                    }
                }
            }
        }
    }

    /// A ready answer with its caching headers (GET) or without (POST).
    fn ready(&self, body: Bytes, this_update: i64, next_update: i64, get: bool, headers: &HeaderMap) -> Response<Body> {
        if get {
            let doc = Document {
                etag: snapshot::etag_of(&body),
                body,
                this_update,
                next_update,
            };
            cached(headers, &doc, "application/ocsp-response", self.ocsp_max_age)
        } else {
            ocsp_body(body)
        }
    }

    /// Signs off the async runtime, within the concurrency and queue bounds;
    /// the answer and its nextUpdate (unix seconds), or None for "try
    /// later". `basis`: the thisUpdate and validity to sign with, instead of
    /// now and this node's setting.
    async fn sign_on_demand(
        &self,
        ca: Arc<CaState>,
        answers: Vec<snapshot::PendingAnswer>,
        nonce: Option<Vec<u8>>,
        basis: Option<(time::OffsetDateTime, time::Duration)>,
    ) -> Option<(Bytes, i64)> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.limits.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let permit = permit.ok()?;
        let now = crate::clock::truncate(time::OffsetDateTime::now_utc());
        // thisUpdate is when the status was last known to be right (RFC 6960
        // §4.2.2.1): now, unless the store has been unreachable since then.
        let (known, validity) = basis.unwrap_or_else(|| {
            let known = match self.sync.synced_ms() {
                at if self.sync.degraded() && at > 0 => {
                    time::OffsetDateTime::from_unix_timestamp((at / 1000) as i64).map_or(now, |t| t.min(now))
                }
                _ => now,
            };
            (known, self.ocsp_validity)
        });
        if known + validity <= now {
            return None;
        }
        let signed = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            snapshot::sign_pending(&ca, &answers, nonce.as_deref(), now, known, validity)
        })
        .await;
        match signed {
            Ok(Ok((der, next_update))) => {
                self.metrics.signatures.with_label_values(&["ocsp_on_demand"]).inc();
                Some((Bytes::from(der), next_update.unix_timestamp()))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "on-demand OCSP signing failed");
                None
            }
            Err(_) => None,
        }
    }

    /// Answers a GET (or HEAD) of `/ocsp/...`; POSTs go through
    /// [`Responder::ocsp_post_at_once`] and [`Responder::ocsp_post_general`].
    pub async fn serve_ocsp_get(&self, path: &str, headers: &HeaderMap) -> Response<Body> {
        let raw = path.strip_prefix("/ocsp/").unwrap_or("");
        // A plain request is answered from the stack-decoded path (a HEAD,
        // or a GET `http::handle` could not answer at once); anything else
        // is decoded to the heap for the general path, which may wait for a
        // signature.
        if let Some(r) = self.ocsp_get_at_once(raw, headers, now_unix()) {
            return r;
        }
        let Some(der) = decode_get_path(raw) else {
            return self.error(ErrorAnswer::MalformedRequest, Outcome::Malformed);
        };
        Box::pin(self.ocsp_general(&der, true, headers)).await
    }
}

#[cfg(test)]
mod tests {
    use base64ct::Encoding;

    use super::*;

    #[test]
    fn get_paths_decode_leniently() {
        let der = vec![0x30, 0x03, 0xfb, 0xff, 0x3e];
        let std = base64ct::Base64::encode_string(&der);
        assert!(std.contains('+') || std.contains('/'));
        assert_eq!(decode_get_path(&std).unwrap(), der);
        let pct = std.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
        assert_eq!(decode_get_path(&pct).unwrap(), der);
        assert_eq!(decode_get_path(&std.replace('+', " ")).unwrap(), der);
        assert_eq!(decode_get_path(std.trim_end_matches('=')).unwrap(), der);
        assert!(decode_get_path("").is_none());
        assert!(decode_get_path("!!!").is_none());
        assert!(decode_get_path("A").is_none());
    }

    #[test]
    fn ca_segments_parse() {
        assert_eq!(ca_and_version("abc-1_v2"), Some(("abc-1", 2)));
        assert_eq!(ca_and_version("abc_v0"), None);
        assert_eq!(ca_and_version("abc"), None);
        assert_eq!(ca_and_version("a_vx"), None);
    }
}
