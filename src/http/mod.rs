//! HTTP: the listener, connection limits and routing.
//!
//! Everything an attacker controls is bounded here: connections, header
//! read time, URL length (414) and body size (413). The responder routes read
//! only the snapshot.

pub mod early;
pub mod responder;
pub mod sendfile;
pub mod tls;
pub mod watchdog;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::{full, Body};
use responder::Responder;

/// A plain-text answer (the responder's, in the body type every route shares).
fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    responder::plain(status, text).map(http_body_util::Either::Left)
}

/// Longest URL of a SCEP request: a GET PKIOperation with a 4096-bit key's
/// request, base64 and percent-encoded, is about 12 KiB.
const SCEP_MAX_URI: usize = 32 * 1024;

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_uri_len: usize,
    pub max_body: usize,
    pub header_timeout: Duration,
    /// Longest a request body may take to arrive, whatever its size: a
    /// stalled body frees its connection slot after this.
    pub body_timeout: Duration,
    /// Slowest a body may trickle in (bytes per second, measured over each
    /// `body_rate_window`): a trickling body is cut off before `body_timeout`.
    pub body_min_rate: usize,
    pub body_rate_window: Duration,
    /// How long in-flight requests may take to finish at shutdown.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_uri_len: 4096,
            max_body: crate::x509::ocsp::MAX_REQUEST_LEN,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(20),
            body_min_rate: 1024,
            body_rate_window: Duration::from_secs(5),
            grace: Duration::from_secs(10),
        }
    }
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything: responder, API, health and metrics (one listener).
    All,
    /// Everything but `/metrics` (the metrics live on the admin listener).
    Public,
    /// The admin listener: health and metrics only.
    Admin,
}

/// What every connection shares.
pub struct AppState {
    pub responder: Responder,
    pub api: Option<Arc<crate::api::Api>>,
    /// SCEP at /scep/{caId}, and EST on the TLS listener (nodes that hold keys).
    pub scep: Option<crate::enrol::Enrolment>,
    /// This listener speaks TLS: EST is served here; CRL, AIA and OCSP are not.
    pub tls: bool,
    pub limits: Limits,
    pub surface: Surface,
    /// Serves /ocsp, /crls, /cacerts (false on signer-only nodes).
    pub responder_routes: bool,
}

fn route_of(method: &Method, path: &str) -> &'static str {
    match path {
        "/healthz" | "/readyz" => "health",
        "/metrics" => "metrics",
        p if p.starts_with("/beta/") || p == "/openapi.json" => "api",
        p if p.starts_with("/ocsp") => {
            if *method == Method::POST {
                "ocsp_post"
            } else {
                "ocsp_get"
            }
        }
        p if p.starts_with("/crls/") => "crl",
        p if p.starts_with("/cacerts/") => "aia",
        p if p.starts_with("/scep/") => "scep",
        _ => "other",
    }
}

/// Why a request body could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    TooLarge,
    /// Not complete within the total deadline, or slower than the minimum rate.
    TooSlow,
    Unreadable,
}

impl BodyError {
    fn plain(self) -> Response<Body> {
        match self {
            BodyError::TooLarge => plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
            BodyError::TooSlow => plain(StatusCode::REQUEST_TIMEOUT, "request body too slow\n"),
            BodyError::Unreadable => plain(StatusCode::BAD_REQUEST, "could not read request body\n"),
        }
    }

    fn api(self) -> crate::api::error::ApiError {
        use crate::api::error::ApiError;
        match self {
            BodyError::TooLarge => ApiError::payload_too_large(),
            BodyError::TooSlow => ApiError::request_timeout(),
            BodyError::Unreadable => ApiError::bad_request("could not read the request body"),
        }
    }
}

/// Reads a whole body of at most `max` bytes, within the limits' total
/// deadline and minimum rate: neither a stalled nor a trickling body can
/// hold a connection slot for long.
async fn read_body(mut body: Incoming, headers: &HeaderMap, max: usize, limits: &Limits) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(BodyError::TooLarge);
    }
    // Nearly every body (an OCSP request's few hundred bytes) came in with
    // its headers, and hyper has put it in the channel as one frame before
    // the handler first runs: taken as it is, with no copy, no deadline and
    // no second poll for the end (~600 of a POST's 19.7k instructions).
    let mut buf = bytes::BytesMut::new();
    match std::future::poll_fn(|cx| std::task::Poll::Ready(hyper::body::Body::poll_frame(Pin::new(&mut body), cx)))
        .await
    {
        std::task::Poll::Ready(None) => return Ok(Bytes::new()),
        std::task::Poll::Ready(Some(Err(_))) => return Err(BodyError::Unreadable),
        std::task::Poll::Ready(Some(Ok(frame))) => {
            if let Ok(data) = frame.into_data() {
                if data.len() > max {
                    return Err(BodyError::TooLarge);
                }
                if hyper::body::Body::is_end_stream(&body) {
                    return Ok(data);
                }
                buf.extend_from_slice(&data);
            }
        }
        // Not here yet: the deadlines below apply from now.
        std::task::Poll::Pending => {}
    }
    buf.reserve(declared.unwrap_or(0).min(max).saturating_sub(buf.len()));
    let start = tokio::time::Instant::now();
    let deadline = start + limits.body_timeout;
    let window = limits.body_rate_window.max(Duration::from_millis(10));
    let needed_per_window = (limits.body_min_rate as f64 * window.as_secs_f64()) as usize;
    let (mut window_start, mut window_bytes) = (start, buf.len());
    loop {
        let window_end = window_start + window;
        match tokio::time::timeout_at(deadline.min(window_end), body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > max {
                        return Err(BodyError::TooLarge);
                    }
                    window_bytes += data.len();
                    buf.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(_))) => return Err(BodyError::Unreadable),
            Ok(None) => return Ok(buf.freeze()),
            Err(_elapsed) => {}
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(BodyError::TooSlow);
        }
        if now >= window_end {
            if window_bytes < needed_per_window {
                return Err(BodyError::TooSlow);
            }
            (window_start, window_bytes) = (now, 0);
        }
    }
}

/// Asks hyper to close the connection after this response: the request's
/// body was not read to its end, so the next request cannot be found.
fn close_after(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The future of one request's response: ready at once for a plain OCSP
/// GET, or the whole request's work, boxed.
///
/// hyper moves the future a service returns into its connection for every
/// request. The full path's future is ~1.9 KB (whatever any route may hold
/// across an await); copied twice per request it cost ~0.35 µs of the
/// ~12 µs a GET takes on one core. A ready answer is a response.
pub enum Handled {
    Now(std::future::Ready<Result<Response<Body>, std::convert::Infallible>>),
    /// With the guard that keeps its connection's watchdog off while it runs
    /// (taken when the future resolves: a streamed body keeps it).
    Later(
        Pin<Box<dyn Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send>>,
        Option<watchdog::Busy>,
    ),
}

impl Future for Handled {
    type Output = Result<Response<Body>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            Handled::Now(ready) => Pin::new(ready).poll(cx),
            Handled::Later(later, busy) => {
                let mut out = std::task::ready!(later.as_mut().poll(cx));
                // A streamed body is still the handler's work: its guard
                // goes with it until the last chunk.
                if let (Ok(response), Some(guard)) = (&mut out, busy.take()) {
                    if let http_body_util::Either::Right(chunks) = response.body_mut() {
                        chunks.keep(Box::new(guard));
                    }
                }
                std::task::Poll::Ready(out)
            }
        }
    }
}

/// Handles one request of a watched connection. The state is borrowed: an
/// answer given at once needs no clone of it (two atomic operations a GET).
/// The head is the connection's progress, and a request answered later
/// keeps it from the watchdog until it is.
pub fn handle(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    peer: Option<std::net::IpAddr>,
    activity: &Arc<watchdog::Activity>,
) -> Handled {
    activity.advance();
    if let Some((response, started)) = answer_at_once(state, &req) {
        // The wall clock times it: one reading fewer than a monotonic start
        // beside the wall-clock second the answer is judged at (each read
        // was ~1 % of a GET's CPU). A step of the clock costs one sample.
        let seconds = started.elapsed().map_or(0.0, |d| d.as_secs_f64());
        let r = &state.responder;
        r.metrics
            .observe_request("ocsp_get", response.status().as_u16(), seconds);
        return Handled::Now(std::future::ready(Ok(response)));
    }
    let started = Instant::now();
    if is_plain_ocsp_post(state, &req) {
        return Handled::Later(Box::pin(ocsp_post(state.clone(), req, started)), Some(activity.busy()));
    }
    Handled::Later(
        Box::pin(handle_later(state.clone(), req, peer, started)),
        Some(activity.busy()),
    )
}

/// `POST /ocsp` where nothing else in [`dispatch`] would claim it first
/// and the URI is within every limit (no query).
fn is_plain_ocsp_post(state: &AppState, req: &Request<Incoming>) -> bool {
    let path = req.uri().path();
    *req.method() == Method::POST
        && responder::is_ocsp_post_path(path)
        && req.uri().query().is_none()
        && state.responder_routes
        && state.surface != Surface::Admin
}

/// [`handle_later`] for a plain `POST /ocsp`, with a future of its own:
/// the general one is ~1.9 KB (whatever any route may hold across an
/// await), and all of it was moved into its box for every POST.
async fn ocsp_post(
    state: Arc<AppState>,
    req: Request<Incoming>,
    started: Instant,
) -> Result<Response<Body>, std::convert::Infallible> {
    let has_body = !hyper::body::Body::is_end_stream(req.body());
    // `is_plain_ocsp_post` admitted only "/ocsp" and "/ocsp/", which answer alike.
    let (response, body_read) = answer_ocsp_post(&state, req, "/ocsp").await;
    let response = if has_body && !body_read {
        close_after(response)
    } else {
        response
    };
    state
        .responder
        .metrics
        .observe_request("ocsp_post", response.status().as_u16(), started.elapsed().as_secs_f64());
    Ok(response)
}

/// An OCSP POST: its body read within the limits, then answered. Also
/// says whether the body was read (a refused one leaves the connection
/// unusable).
async fn answer_ocsp_post(state: &AppState, req: Request<Incoming>, path: &str) -> (Response<Body>, bool) {
    let (parts, body) = req.into_parts();
    match read_body(body, &parts.headers, state.limits.max_body, &state.limits).await {
        // Answered here when the pre-signed bytes settle it, the rest boxed:
        // each async layer of the general path moved the request and its
        // response once more (memmove 3.6 -> 2.7 % of a POST's samples).
        Ok(body) => {
            let r = &state.responder;
            let response = match r.ocsp_post_at_once(path, &body) {
                Some(answer) => answer,
                None => r.ocsp_post_general(path, &body).await,
            };
            (response.map(http_body_util::Either::Left), true)
        }
        Err(e) => (e.plain(), false),
    }
}

/// The OCSP GET that the pre-signed answers settle (one CertID, no
/// extension: nearly all of them), when nothing else in [`dispatch`] would
/// claim the request first, with the time it was taken up; None sends it
/// the whole way.
fn answer_at_once(state: &AppState, req: &Request<Incoming>) -> Option<(Response<Body>, SystemTime)> {
    let path = req.uri().path();
    let raw = path.strip_prefix("/ocsp/")?;
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if *req.method() != Method::GET
        || !state.responder_routes
        || state.surface == Surface::Admin
        || uri_len > state.limits.max_uri_len
        || !hyper::body::Body::is_end_stream(req.body())
    {
        return None;
    }
    let started = SystemTime::now();
    let response = state
        .responder
        .ocsp_get_at_once(raw, req.headers(), responder::unix_seconds(started))?;
    Some((response.map(http_body_util::Either::Left), started))
}

async fn handle_later(
    state: Arc<AppState>,
    req: Request<Incoming>,
    peer: Option<std::net::IpAddr>,
    started: Instant,
) -> Result<Response<Body>, std::convert::Infallible> {
    let method = req.method().clone();
    // The URI's parts are shared `Bytes`: a clone copies no text.
    let uri = req.uri().clone();
    let path = uri.path();
    let route = route_of(&method, path);
    let r = &state.responder;
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let has_body = !hyper::body::Body::is_end_stream(req.body());
    // SCEP's GET PKIOperation carries the whole request in the URL.
    let max_uri = if path.starts_with("/scep/") {
        state.limits.max_uri_len.max(SCEP_MAX_URI)
    } else {
        state.limits.max_uri_len
    };
    let (mut response, body_read) = if uri_len > max_uri {
        (plain(StatusCode::URI_TOO_LONG, "URI too long\n"), false)
    } else {
        dispatch(&state, req, &method, path, peer).await
    };
    if has_body && !body_read {
        response = close_after(response);
    }
    if method == Method::HEAD {
        head_of(&mut response);
    }
    r.metrics
        .observe_request(route, response.status().as_u16(), started.elapsed().as_secs_f64());
    Ok(response)
}

/// Turns a GET answer into the HEAD answer: the same headers, Content-Length
/// included (RFC 9110 §9.3.2), and no body. hyper computes Content-Length
/// from the body it sends, so it is set here before the body goes.
fn head_of(response: &mut Response<Body>) {
    let status = response.status();
    if status != StatusCode::NOT_MODIFIED && status != StatusCode::NO_CONTENT && !status.is_informational() {
        if let Some(len) = hyper::body::Body::size_hint(response.body()).exact() {
            response
                .headers_mut()
                .entry(header::CONTENT_LENGTH)
                .or_insert_with(|| HeaderValue::from(len));
        }
    }
    *response.body_mut() = full(Bytes::new());
}

/// EST's two path forms (see `enrol::est::route`). The responder's routes
/// are ruled out by their prefix first, so OCSP/CRL/AIA requests pay no
/// substring search.
fn is_est_path(path: &str) -> bool {
    let responder_route = path.starts_with("/ocsp") || path.starts_with("/crls/") || path.starts_with("/cacerts/");
    path.starts_with("/.well-known/est/") || (!responder_route && path.contains("/.well-known/est/"))
}

/// Routes one request; says whether its body was read to the end.
async fn dispatch(
    state: &AppState,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
    peer: Option<std::net::IpAddr>,
) -> (Response<Body>, bool) {
    let r = &state.responder;
    let is_get = *method == Method::GET || *method == Method::HEAD;
    match path {
        "/healthz" if is_get => return (plain(StatusCode::OK, "ok\n"), false),
        "/readyz" if is_get => {
            let resp = if !r.published.load().ready {
                plain(StatusCode::SERVICE_UNAVAILABLE, "loading\n")
            } else if r.sync.degraded() {
                // Still serving the last snapshot; the body tells probes why.
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "degraded: the database is unreachable; serving the last snapshot\n",
                )
            } else {
                plain(StatusCode::OK, "ready\n")
            };
            return (resp, false);
        }
        "/metrics" if is_get && state.surface != Surface::Public => {
            r.metrics.snapshot_age_seconds.set(r.sync.age_seconds());
            r.metrics
                .zero_copy_bodies
                .set(crate::snapshot::zerocopy::mirrored() as i64);
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            for (id, ca) in r.published.load().cas.iter() {
                for (partition, crl) in ca.crls.iter() {
                    r.metrics
                        .crl_age_seconds
                        .with_label_values(&[id.as_ref(), partition.label().as_str()])
                        .set(now - crl.doc.this_update);
                }
            }
            r.metrics.store_degraded.set(i64::from(r.sync.degraded()));
            let mut resp = Response::new(full(r.metrics.render()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return (resp, false);
        }
        _ if state.surface == Surface::Admin => return (plain(StatusCode::NOT_FOUND, "not found\n"), false),
        "/openapi.json" if is_get => {
            if let Some(api) = &state.api {
                return (api.openapi(), false);
            }
        }
        "/beta/$metadata" | "/beta/%24metadata" if is_get => {
            if let Some(api) = &state.api {
                return (api.metadata(), false);
            }
        }
        _ => {}
    }
    // The management API, EST and SCEP are awaited through a box: their
    // futures are large, and every request's future is as large as the
    // largest branch it could take; hyper moves it into place per request.
    if let (Some(api), true) = (&state.api, path.starts_with("/beta/")) {
        return Box::pin(dispatch_api(state, api, req, method, path)).await;
    }
    if is_est_path(path) {
        return Box::pin(dispatch_est(state, req, method, path, peer)).await;
    }
    if let (Some(scep), true) = (&state.scep, path.starts_with("/scep/")) {
        return Box::pin(dispatch_scep(state, scep, req, method, path, peer)).await;
    }
    if !state.responder_routes {
        return (plain(StatusCode::NOT_FOUND, "not found\n"), false);
    }
    if path == "/ocsp" || path.starts_with("/ocsp/") {
        return match *method {
            Method::POST => answer_ocsp_post(state, req, path).await,
            Method::GET | Method::HEAD => (
                r.serve_ocsp_get(path, req.headers())
                    .await
                    .map(http_body_util::Either::Left),
                false,
            ),
            _ => (method_not_allowed("GET, POST"), false),
        };
    }
    if path.starts_with("/crls/") || path.starts_with("/cacerts/") {
        if !is_get {
            return (method_not_allowed("GET, HEAD"), false);
        }
        if let Some((_, resp)) = responder::serve_document(r, path, req.headers()) {
            return (resp.map(http_body_util::Either::Left), false);
        }
    }
    (plain(StatusCode::NOT_FOUND, "not found\n"), false)
}

async fn dispatch_api(
    state: &AppState,
    api: &crate::api::Api,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> (Response<Body>, bool) {
    use crate::api::{Api, ApiRequest};
    let ids = Api::request_ids(req.headers());
    // Route, token and permissions first: nobody gets a body buffered
    // (or a slot held while it trickles in) without a valid token.
    let prepared = match api.prepare(method, path, req.headers(), &ids).await {
        Ok(p) => p,
        Err(resp) => return (resp, false),
    };
    let query = req.uri().query().map(str::to_owned);
    let (parts, body) = req.into_parts();
    let reads = prepared.reads_body();
    let body = if reads {
        match read_body(body, &parts.headers, crate::api::MAX_BODY, &state.limits).await {
            Ok(b) => b,
            Err(e) => return (Api::error_response(e.api(), &ids), false),
        }
    } else {
        Bytes::new()
    };
    let req = ApiRequest {
        method,
        path,
        query: query.as_deref(),
        headers: &parts.headers,
        body,
    };
    (api.execute(&prepared, req, &ids).await, reads)
}

async fn dispatch_est(
    state: &AppState,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
    peer: Option<std::net::IpAddr>,
) -> (Response<Body>, bool) {
    let Some(enrol) = state.scep.as_ref().filter(|_| state.tls) else {
        return (
            plain(
                StatusCode::NOT_FOUND,
                "EST is served on the TLS listener (tls_listen)\n",
            ),
            false,
        );
    };
    let client_cert = req.extensions().get::<tls::PeerCertificate>().cloned();
    let query = req.uri().query().map(str::to_owned);
    let (parts, body) = req.into_parts();
    let (body, read) = if *method == Method::POST {
        match read_body(body, &parts.headers, crate::enrol::est::MAX_BODY, &state.limits).await {
            Ok(b) => (Some(b), true),
            Err(e) => return (e.plain(), false),
        }
    } else {
        (None, false)
    };
    let resp = enrol
        .est(crate::enrol::est::EstRequest {
            method,
            path,
            query: query.as_deref(),
            headers: &parts.headers,
            body,
            client_cert: client_cert.as_ref().map(|p| p.0.as_slice()),
            peer,
        })
        .await;
    (resp.map(http_body_util::Either::Left), read)
}

async fn dispatch_scep(
    state: &AppState,
    scep: &crate::enrol::Enrolment,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
    peer: Option<std::net::IpAddr>,
) -> (Response<Body>, bool) {
    let query = req.uri().query().map(str::to_owned);
    if *method == Method::POST {
        let (parts, body) = req.into_parts();
        return match read_body(body, &parts.headers, crate::x509::scep::MAX_MESSAGE_LEN, &state.limits).await {
            Ok(body) => (
                scep.serve(method, path, query.as_deref(), Some(body), peer)
                    .await
                    .map(http_body_util::Either::Left),
                true,
            ),
            Err(e) => (e.plain(), false),
        };
    }
    return (
        scep.serve(method, path, query.as_deref(), None, peer)
            .await
            .map(http_body_util::Either::Left),
        false,
    );
}

use http::HeaderMap;

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// The `n`th accepted connection's header timeout: between 3/4 of `base`
/// and `base`, spread by the golden ratio (its watchdog's first tick is
/// this less 3/4 of `base`, and its later ticks keep the offset).
/// Connections opened together (a reconnect wave, an attack's thousand
/// sockets) would otherwise all time out in the same millisecond and all
/// reconnect in the next: a burst of accepts that the requests of
/// established connections queue behind. Spread, the first wave's timeouts
/// cover a quarter of `base` and never line up again.
fn spread_timeout(base: Duration, n: u64) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    let frac = (n as f64 * GOLDEN).fract();
    base.mul_f64(1.0 - frac / 4.0)
}

/// `start`'s output, or None once shutdown has begun (`stopping` true).
async fn unless_stopping<T>(
    mut stopping: tokio::sync::watch::Receiver<bool>,
    start: impl Future<Output = Option<T>>,
) -> Option<T> {
    tokio::select! {
        started = start => started,
        _ = stopping.wait_for(|s| *s) => None,
    }
}

/// A connection whose first head is in, served by hyper until it ends or
/// shutdown lets it go; a TLS client certificate, if any, rides along in
/// every request's extensions.
async fn serve_started<S>(
    io: watchdog::Watched<S>,
    peer: Option<tls::PeerCertificate>,
    remote: std::net::IpAddr,
    state: Arc<AppState>,
    builder: hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    activity: Arc<watchdog::Activity>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |mut req: Request<Incoming>| {
        if let Some(p) = &peer {
            req.extensions_mut().insert(p.clone());
        }
        handle(&state, req, Some(remote), &activity)
    });
    let _ = watcher.watch(builder.serve_connection(TokioIo::new(io), service)).await;
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish
/// (up to the grace period).
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>) {
    serve_with(listener, None, state, shutdown).await
}

/// [`serve`] over TLS: each connection's handshake (bounded by the header
/// timeout) comes first, and its client certificate, if any, rides along
/// in every request's extensions as [`tls::PeerCertificate`].
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, Some(tokio_rustls::TlsAcceptor::from(config)), state, shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Tells connections still waiting for a first head (or a handshake)
    // that shutdown began: they have no request to finish, and each holds
    // a graceful watcher that `graceful.shutdown()` would wait for.
    let (stopping, not_started) = tokio::sync::watch::channel(false);
    let connections = Arc::new(Semaphore::new(state.limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The header read and idle timeouts are the watchdog's (see there for
    // why not hyper's), so hyper arms no timer per request.
    builder
        .header_read_timeout(None)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let mut accepted_count: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    drop(stream); // over the connection limit
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                accepted_count = accepted_count.wrapping_add(1);
                let timeout = state.limits.header_timeout;
                let activity = watchdog::Activity::new();
                // 3/4 to all of the timeout for a first head, as hyper's own
                // timeout was spread (see `spread_timeout`).
                let first_tick = spread_timeout(timeout, accepted_count).saturating_sub(timeout * 3 / 4);
                let (builder, watcher, not_started) = (builder.clone(), graceful.watcher(), not_started.clone());
                let (tls, watched) = (tls.clone(), activity.clone());
                let connection = async move {
                    let remote = remote.ip();
                    match tls {
                        None => {
                            let mut stream = stream;
                            // Bounded by the watchdog: no progress until a head is parsed.
                            let head = unless_stopping(not_started, early::read_head(&mut stream));
                            let Some(early) = head.await else {
                                return;
                            };
                            let stream = sendfile::SendfileStream::new(stream);
                            let io = watchdog::Watched::new(stream, early, watched.clone());
                            serve_started(io, None, remote, state, builder, watcher, watched).await;
                        }
                        Some(acceptor) => {
                            // Bounded by the watchdog: no progress until the handshake ends.
                            let started = async {
                                let mut stream = acceptor
                                    .accept(stream)
                                    .await
                                    .map_err(|e| tracing::debug!(error = %e, "TLS handshake failed"))
                                    .ok()?;
                                watched.advance(); // the handshake: the first head's time starts now
                                let early = early::read_head(&mut stream).await?;
                                Some((stream, early))
                            };
                            let Some((stream, early)) = unless_stopping(not_started, started).await else {
                                return;
                            };
                            let peer = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| tls::PeerCertificate(Arc::new(c.as_ref().to_vec())));
                            let io = watchdog::Watched::new(stream, early, watched.clone());
                            serve_started(io, peer, remote, state, builder, watcher, watched).await;
                        }
                    }
                    drop(permit);
                };
                watchdog::spawn(connection, activity, first_tick, timeout);
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(state.limits.grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handler's busy mark ends with its future, but a streamed body is
    /// still the handler's work: it keeps the mark until it is dropped.
    #[tokio::test]
    async fn a_streamed_body_keeps_its_connection_busy_until_it_is_sent() {
        let activity = watchdog::Activity::new();
        let (_tx, body) = crate::api::ChunkBody::channel(1);
        let later = Handled::Later(Box::pin(async move { Ok(Response::new(body)) }), Some(activity.busy()));
        let response = later.await.unwrap();
        assert_eq!(
            Arc::strong_count(&activity),
            2,
            "the streamed body let its busy mark go"
        );
        drop(response);
        assert_eq!(Arc::strong_count(&activity), 1);

        let whole = Handled::Later(
            Box::pin(async { Ok(Response::new(full("done"))) }),
            Some(activity.busy()),
        );
        let _response = whole.await.unwrap();
        assert_eq!(Arc::strong_count(&activity), 1, "a whole body kept its busy mark");
    }

    #[test]
    fn header_timeouts_are_spread_over_the_last_quarter() {
        let base = Duration::from_secs(10);
        let mut ms: Vec<u128> = (1..=1000).map(|n| spread_timeout(base, n).as_millis()).collect();
        assert!(ms.iter().all(|&t| (7_500..=10_000).contains(&t)), "{ms:?}");
        // A thousand connections accepted together: no 100 ms holds more
        // than a few per cent of them (evenly spread, 40 each).
        ms.sort_unstable();
        let crowded = ms.windows(60).filter(|w| w[59] - w[0] < 100).count();
        assert_eq!(crowded, 0, "timeouts bunch up: {ms:?}");
        assert!(ms[999] - ms[0] > 2_400, "spread over {} ms only", ms[999] - ms[0]);
    }
}
