//! The one error type of the API: every failure maps to a stable machine-readable code and an HTTP
//! status, rendered as `{code, message, requestId}` (plus `field` for bad input).

use axum::Json;
use axum::http::StatusCode;
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
    /// The offending request field, for `InvalidParameter`.
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
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let field = match &self {
            Self::InvalidParameter { field, .. } => Some(field.clone()),
            _ => None,
        };
        let body = ErrorBody {
            code,
            message: self.to_string(),
            request_id: REQUEST_ID.try_with(Clone::clone).unwrap_or_default(),
            field,
        };
        (status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
