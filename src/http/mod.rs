//! HTTP: the listener, connection limits and routing.
//!
//! Everything an attacker controls is bounded here: connections, header
//! read time, URL length (414) and body size (413). The responder routes read
//! only the snapshot.

pub mod responder;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use responder::{plain, Body, Responder};

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_uri_len: usize,
    pub max_body: usize,
    pub header_timeout: Duration,
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
    pub api: Option<crate::api::Api>,
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
        _ => "other",
    }
}

async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, Response<Body>> {
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        if len > max {
            return Err(plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"));
        }
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"))
        }
        Err(_) => Err(plain(StatusCode::BAD_REQUEST, "could not read request body\n")),
    }
}

/// Handles one request.
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = route_of(&method, &path);
    let r = &state.responder;
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let response = if uri_len > state.limits.max_uri_len {
        plain(StatusCode::URI_TOO_LONG, "URI too long\n")
    } else {
        dispatch(&state, req, &method, &path).await
    };
    let mut response = response;
    if method == Method::HEAD {
        *response.body_mut() = Full::default();
    }
    r.metrics
        .observe_request(route, response.status().as_u16(), started.elapsed().as_secs_f64());
    Ok(response)
}

async fn dispatch(state: &AppState, req: Request<Incoming>, method: &Method, path: &str) -> Response<Body> {
    let r = &state.responder;
    let is_get = *method == Method::GET || *method == Method::HEAD;
    match path {
        "/healthz" if is_get => return plain(StatusCode::OK, "ok\n"),
        "/readyz" if is_get => {
            return if !r.published.load().ready {
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
        }
        "/metrics" if is_get && state.surface != Surface::Public => {
            r.metrics.snapshot_age_seconds.set(r.sync.age_seconds());
            r.metrics.store_degraded.set(i64::from(r.sync.degraded()));
            let mut resp = Response::new(Full::new(Bytes::from(r.metrics.render())));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return resp;
        }
        _ if state.surface == Surface::Admin => return plain(StatusCode::NOT_FOUND, "not found\n"),
        "/openapi.json" if is_get => {
            if let Some(api) = &state.api {
                return api.openapi();
            }
        }
        _ => {}
    }
    if let (Some(api), true) = (&state.api, path.starts_with("/beta/")) {
        let query = req.uri().query().map(str::to_owned);
        let headers = req.headers().clone();
        let body = match read_body(req, crate::api::MAX_BODY).await {
            Ok(b) => b,
            Err(resp) if resp.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return crate::api::error::ApiError::payload_too_large().into_response("", "");
            }
            Err(resp) => return resp,
        };
        return api
            .handle(crate::api::ApiRequest {
                method,
                path,
                query: query.as_deref(),
                headers: &headers,
                body,
            })
            .await;
    }
    if !state.responder_routes {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if path == "/ocsp" || path.starts_with("/ocsp/") {
        return match *method {
            Method::POST => match read_body(req, state.limits.max_body).await {
                Ok(body) => r.serve_ocsp(method, path, &HeaderMap::new(), Some(body)).await,
                Err(resp) => resp,
            },
            Method::GET | Method::HEAD => r.serve_ocsp(method, path, req.headers(), None).await,
            _ => method_not_allowed("GET, POST"),
        };
    }
    if path.starts_with("/crls/") || path.starts_with("/cacerts/") {
        if !is_get {
            return method_not_allowed("GET, HEAD");
        }
        if let Some((_, resp)) = responder::serve_document(r, path, req.headers()) {
            return resp;
        }
    }
    plain(StatusCode::NOT_FOUND, "not found\n")
}

use http::HeaderMap;

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish
/// (up to the grace period).
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(state.limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.limits.header_timeout)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
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
                let service = service_fn(move |req| handle(state.clone(), req));
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(state.limits.grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}
