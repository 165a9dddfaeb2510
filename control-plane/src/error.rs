//! The one error type of the API: every failure maps to a stable machine-readable code and an HTTP
//! status, rendered as `{code, message, requestId}` (plus `field` for bad input). Answers that ask the
//! client to come back later (429, 503) carry `Retry-After`.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

tokio::task_local! {
    /// Request id of the request being handled, so errors can carry it without threading it through.
    pub static REQUEST_ID: String;
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {message}")]
    InvalidParameter { field: String, message: String },
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("request signature does not match")]
    SignatureMismatch,
    #[error("request timestamp is outside the allowed window")]
    RequestExpired,
    #[error("request nonce was already used")]
    NonceReplayed,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("missing or wrong X-CSRF-Token header (console session)")]
    CsrfTokenInvalid,
    /// A limit would drop below what the instance already holds (409 naming the quota).
    #[error("{message}")]
    QuotaBelowUsage { field: String, message: String },
    /// PostgreSQL cannot be reached (or refuses connections): the client should retry.
    #[error("the database is unavailable; retry shortly")]
    ServiceUnavailable,
    #[error("the request took too long and was cancelled")]
    RequestTimeout,
    #[error("too many login attempts; retry after {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("too many logins are being checked right now; retry shortly")]
    ServerBusy,
    /// No broker has sent a heartbeat lately, so none can run what was asked (TestRule).
    #[error("no broker node is live (none sent a heartbeat within broker_silent_secs)")]
    NoLiveBroker,
    /// The broker asked to test a rule did not answer in time.
    #[error("broker node {node_id} did not answer the test within {secs} s")]
    RuleTestTimeout { node_id: String, secs: u64 },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Error body of every non-2xx answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Stable code, e.g. `InvalidParameter`, `Forbidden`, `NotFound`, `AlreadyExists`.
    pub code: &'static str,
    pub message: String,
    pub request_id: String,
    /// The offending request field, for `InvalidParameter` and `QuotaBelowUsage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::InvalidParameter {
            field: field.into(),
            message: message.to_string(),
        }
    }

    /// The stable code the answer carries (`InvalidParameter`, `AlreadyExists`, ...).
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidParameter { .. } => (StatusCode::BAD_REQUEST, "InvalidParameter"),
            Self::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "Unauthenticated"),
            Self::SignatureMismatch => (StatusCode::UNAUTHORIZED, "SignatureDoesNotMatch"),
            Self::RequestExpired => (StatusCode::UNAUTHORIZED, "RequestExpired"),
            Self::NonceReplayed => (StatusCode::UNAUTHORIZED, "NonceReplayed"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            Self::AlreadyExists(_) => (StatusCode::CONFLICT, "AlreadyExists"),
            Self::QuotaExceeded(_) => (StatusCode::CONFLICT, "QuotaExceeded"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            Self::CsrfTokenInvalid => (StatusCode::FORBIDDEN, "InvalidCsrfToken"),
            Self::QuotaBelowUsage { .. } => (StatusCode::CONFLICT, "QuotaBelowUsage"),
            Self::ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            Self::RequestTimeout => (StatusCode::SERVICE_UNAVAILABLE, "RequestTimeout"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            Self::ServerBusy => (StatusCode::SERVICE_UNAVAILABLE, "ServerBusy"),
            Self::NoLiveBroker => (StatusCode::SERVICE_UNAVAILABLE, "NoBrokerAvailable"),
            Self::RuleTestTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "RuleTestTimeout"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }

    /// Seconds a client should wait before trying again, for the answers that say "later".
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            Self::ServiceUnavailable | Self::RequestTimeout | Self::ServerBusy => Some(1),
            _ => None,
        }
    }
}

/// True for the errors that mean "PostgreSQL is not there right now" rather than a bug: no connection
/// could be had in time, the connection broke, or the server is shutting down, starting up or full.
/// SQLSTATE classes 08 (connection exception), 57P01-57P03 (admin/crash shutdown, cannot connect now)
/// and 53300 (too many connections).
fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")),
        _ => false,
    }
}

/// SQLSTATE 22021 (a NUL byte or invalid UTF-8 in text) and 22P05 (`\u0000` in jsonb): input
/// PostgreSQL cannot store. The extractors refuse such input first (`extract.rs`); this is the
/// backstop, so it is never a 500.
fn unstorable_input(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "22021" || c == "22P05"))
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if database_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            return Self::ServiceUnavailable;
        }
        if unstorable_input(&e) {
            return Self::invalid("body", "contains a character that cannot be stored (NUL)");
        }
        Self::Internal(e.into())
    }
}

/// An error from a helper that returns `anyhow` (snapshot building): a database error inside keeps
/// its meaning (503 when PostgreSQL is away), anything else is internal.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<sqlx::Error>() {
            Ok(db) => db.into(),
            Err(other) => Self::Internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let field = match &self {
            Self::InvalidParameter { field, .. } | Self::QuotaBelowUsage { field, .. } => Some(field.clone()),
            _ => None,
        };
        let retry_after = self.retry_after_secs();
        let body = ErrorBody {
            code,
            message: self.to_string(),
            request_id: REQUEST_ID.try_with(Clone::clone).unwrap_or_default(),
            field,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
