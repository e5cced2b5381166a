//! Graph error bodies: the one place that decides what a caller is told.
//!
//! `{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}`

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::domain::PkiError;
use crate::store::StoreError;
use crate::x509::X509Error;

/// A response body: whole, or streamed in chunks. The API builds responses
/// and knows nothing of the HTTP layer above it (which serves them).
pub type Body = http_body_util::Either<Full<Bytes>, ChunkBody>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Either::Left(Full::new(bytes.into()))
}

/// A body sent in chunks as a producer makes them: a large collection is
/// streamed through a bounded channel (the producer waits while the client
/// reads), so its size never sits in memory. A producer that fails sends an
/// error, and the connection is cut rather than a truncated document
/// passing for a whole one.
#[derive(Debug)]
pub struct ChunkBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    /// Whatever the server wants alive while the body is sent (its
    /// connection's busy mark: a producer may take a while between chunks).
    kept: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl ChunkBody {
    /// A body and the sender its producer writes to (`depth` chunks in flight).
    pub fn channel(depth: usize) -> (tokio::sync::mpsc::Sender<std::io::Result<Bytes>>, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel(depth);
        (tx, http_body_util::Either::Right(ChunkBody { rx, kept: None }))
    }

    /// Keeps `token` until the body is dropped.
    pub fn keep(&mut self, token: Box<dyn std::any::Any + Send + Sync>) {
        self.kept = Some(token);
    }
}

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(hyper::body::Frame::data)))
    }
}

/// An API failure with its HTTP status and Graph error code.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFound", m)
    }
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "this method is not allowed on this resource",
        )
    }
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "send Content-Type: application/json",
        )
    }
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "the request body is too large",
        )
    }
    /// The body did not arrive in time (stalled or trickling).
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            "the request body did not arrive in time",
        )
    }
    pub fn too_many_requests(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "too many requests from this principal; retry after the number of seconds in Retry-After",
            )
        }
    }
    /// The database cannot be reached: nothing was changed; retry later.
    pub fn unavailable() -> Self {
        ApiError {
            retry_after: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the database is unreachable; nothing was changed, retry later",
            )
        }
    }
    /// Another writer holds the database: nothing was changed; retry shortly.
    pub fn busy() -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the store is busy; nothing was changed, retry",
            )
        }
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        // The detail goes to the log, not to the caller.
        tracing::error!(error = %detail, "internal API error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "an internal error occurred",
        )
    }

    pub fn into_response(self, request_id: &str, client_request_id: &str) -> Response<Body> {
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {"date": date, "request-id": request_id, "client-request-id": client_request_id},
        }});
        let mut r = Response::new(full(body.to_string()));
        *r.status_mut() = self.status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<PkiError> for ApiError {
    fn from(e: PkiError) -> Self {
        let msg = e.to_string();
        match e {
            PkiError::NotFound { .. } => Self::not_found(msg),
            PkiError::Lifecycle(_)
            | PkiError::DuplicateCommonName(_)
            | PkiError::AlreadyRevoked(_)
            | PkiError::CaLimitReached(_) => Self::new(StatusCode::CONFLICT, "Conflict", msg),
            PkiError::Invalid(_) | PkiError::Rejected(_) | PkiError::AmbiguousSerial(_) => Self::bad_request(msg),
            // What a caller's input can cause; the rest of X.509 (signing,
            // stored DER, clocks) is ours to fix: a 500 with a request id.
            PkiError::X509(
                X509Error::InvalidName(_)
                | X509Error::WeakKey(_)
                | X509Error::UnsupportedAlgorithm(_)
                | X509Error::Pem(_),
            ) => Self::bad_request(msg),
            PkiError::PreconditionFailed => Self::new(StatusCode::PRECONDITION_FAILED, "PreconditionFailed", msg),
            PkiError::Store(StoreError::Busy) => Self::busy(),
            PkiError::Store(StoreError::Unavailable(_)) => Self::unavailable(),
            other => Self::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: PkiError) -> (StatusCode, &'static str, Option<u64>) {
        let a = ApiError::from(e);
        (a.status, a.code, a.retry_after)
    }

    #[test]
    fn internal_failures_are_500_not_400() {
        // A signing failure or a corrupt stored DER is ours, not the caller's.
        assert_eq!(
            status(PkiError::X509(X509Error::Crypto("sign"))).0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(PkiError::X509(X509Error::Der(der::Error::incomplete(
                der::Length::ZERO
            ))))
            .0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(PkiError::Store(StoreError::Corrupt("x".into()))).0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        // What the caller sent stays a 400.
        assert_eq!(
            status(PkiError::X509(X509Error::InvalidName("countryName".into()))).0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status(PkiError::Rejected("csr".into())).0, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_busy_store_is_a_typed_503_with_retry_after() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert!(matches!(StoreError::from(busy), StoreError::Busy));
        let locked = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_LOCKED), None);
        assert!(matches!(StoreError::from(locked), StoreError::Busy));
        assert_eq!(
            status(PkiError::Store(StoreError::Busy)),
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", Some(1))
        );
    }
}
