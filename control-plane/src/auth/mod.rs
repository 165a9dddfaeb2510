//! Who is calling: an operator (bearer JWT, may touch everything) or a backend application
//! (ACS3-signed AccessKey request, may touch only the instances its key is bound to). The middleware
//! authenticates once per request and stores the `Caller` for handlers to extract.

pub(crate) mod access_key;
pub mod acs3;
pub(crate) mod login_limit;
pub mod node;
pub(crate) mod operator;
pub(crate) mod signing_key;

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::Method;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::console_session;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Largest body a signed request may have: the largest any route takes (SendMessage's).
pub(crate) const MAX_SIGNED_BODY: usize = crate::api::messages::BODY_LIMIT;

#[derive(Debug, Clone)]
pub(crate) enum Caller {
    Operator,
    AccessKey {
        id: String,
        instances: Arc<HashSet<String>>,
    },
}

impl Caller {
    /// Account-level operations (instances, AccessKeys) are for operators only.
    pub fn require_operator(&self) -> ApiResult<()> {
        match self {
            Self::Operator => Ok(()),
            Self::AccessKey { .. } => Err(ApiError::Forbidden("this operation requires an operator")),
        }
    }

    /// Checked before anything else on an instance, so that a key learns nothing (not even whether
    /// the instance exists) about instances it is not bound to.
    pub fn require_instance(&self, instance_id: &str) -> ApiResult<()> {
        match self {
            Self::Operator => Ok(()),
            Self::AccessKey { instances, .. } if instances.contains(instance_id) => Ok(()),
            Self::AccessKey { .. } => Err(ApiError::Forbidden("the AccessKey is not allowed on this instance")),
        }
    }

    pub fn access_key_id(&self) -> Option<&str> {
        match self {
            Self::AccessKey { id, .. } => Some(id),
            Self::Operator => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthenticated("authentication required"))
    }
}

/// Middleware on every `/api/v1` route except login.
pub(crate) async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match identify(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn identify(state: &AppState, req: Request) -> ApiResult<Request> {
    if req.headers().get(AUTHORIZATION).is_none()
        && let Some(token) = console_session::session_cookie(req.headers())
    {
        return console(state, token.to_string(), req);
    }
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthenticated("missing or unreadable Authorization header"))?
        .to_string();
    if let Some(token) = header.strip_prefix("Bearer ") {
        state
            .operator_keys
            .verify(token.trim())
            .ok_or(ApiError::Unauthenticated("invalid or expired bearer token"))?;
        let mut req = req;
        req.extensions_mut().insert(Caller::Operator);
        return Ok(req);
    }
    if header.starts_with(acs3::ALGORITHM) {
        // The signature covers the body through the signed `x-acs-content-sha256` header, so it is
        // checked before a byte of the body is read: a client without a valid key cannot make us read
        // or buffer a body at all. A declared length over the limit is refused before anything else.
        let (mut parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_SIGNED_BODY as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        let signed = access_key::verify(state, &parts, &header).await?;
        // Reading stops at the limit (a chunked body has no declared length).
        let bytes = axum::body::to_bytes(body, MAX_SIGNED_BODY)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        if !acs3::sha256_hex(&bytes).eq_ignore_ascii_case(&signed.content_sha256) {
            return Err(ApiError::SignatureMismatch);
        }
        parts.extensions.insert(signed.caller);
        return Ok(Request::from_parts(parts, Body::from(bytes)));
    }
    Err(ApiError::Unauthenticated(
        "unsupported Authorization scheme (use Bearer or ACS3-HMAC-SHA256)",
    ))
}

/// A request of the web console: the operator JWT from its HttpOnly cookie, and for anything but GET
/// and HEAD the session's CSRF token in `X-CSRF-Token` (`api::console_session`).
fn console(state: &AppState, token: String, mut req: Request) -> ApiResult<Request> {
    state
        .operator_keys
        .verify(&token)
        .ok_or(ApiError::Unauthenticated("the console session expired"))?;
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if !safe {
        let sent = req
            .headers()
            .get(console_session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let expected = state.operator_keys.csrf_token(&token);
        if !common::signing::constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
            return Err(ApiError::CsrfTokenInvalid);
        }
    }
    req.extensions_mut().insert(Caller::Operator);
    Ok(req)
}
