//! The web console's session: the operator JWT in an HttpOnly cookie that script cannot read, so an
//! injected script cannot steal it. API clients keep using `Login` and bearer tokens.
//!
//! - `POST /api/v1/console/session` checks the password (behind the same limits as `Login`) and sets
//!   the cookie `mqtt_console_session` (`HttpOnly; SameSite=Strict; Path=/api`, `Secure` when the
//!   request came over HTTPS or `session_cookie_secure` says so); the answer carries the session's CSRF
//!   token.
//! - `GET` tells whether the cookie holds a valid session, and its CSRF token (after a reload).
//! - `DELETE` clears the cookie.
//!
//! A request authenticated by the cookie must send the CSRF token in `X-CSRF-Token` unless it is a GET
//! or HEAD (`auth::identify`): SameSite=Strict already keeps the cookie off cross-site requests, and a
//! custom header cannot be sent cross-site without a CORS preflight, which the control plane never
//! grants.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::login::{LoginRequest, check_password};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

pub(crate) const COOKIE: &str = "mqtt_console_session";
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleSession {
    /// Send as `X-CSRF-Token` on every request but GET and HEAD.
    pub csrf_token: String,
    /// Expiry in epoch seconds.
    pub expires_at: i64,
}

/// The session token in the request's cookie, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.session_cookie_secure.unwrap_or_else(|| {
        headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    })
}

fn cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/api; Max-Age={max_age}{secure}"
    ))
    .expect("a JWT is a valid header value")
}

#[utoipa::path(post, path = "/api/v1/console/session", operation_id = "CreateConsoleSession", tag = "operators",
    request_body = LoginRequest,
    responses((status = 200, body = ConsoleSession, description = "signed in; the session is in an HttpOnly cookie"),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many attempts from this address or for this username; see Retry-After"),
        (status = 503, body = ErrorBody, description = "too many logins being checked at once (ServerBusy), or the database is unavailable; see Retry-After")))]
pub async fn create_console_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<impl IntoResponse> {
    check_password(&state, peer, &req).await?;
    let ttl = state.config.operator_token_ttl_secs;
    let (token, expires_at) = state.operator_keys.issue(&req.username, ttl);
    let session = ConsoleSession {
        csrf_token: state.operator_keys.csrf_token(&token),
        expires_at,
    };
    let set = cookie(&token, ttl, secure(&state, &headers));
    Ok((AppendHeaders([(SET_COOKIE, set)]), Json(session)))
}

#[utoipa::path(get, path = "/api/v1/console/session", operation_id = "GetConsoleSession", tag = "operators",
    security(("console" = [])),
    responses((status = 200, body = ConsoleSession), (status = 401, body = ErrorBody, description = "no valid session cookie")))]
pub async fn get_console_session(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<ConsoleSession>> {
    let token = session_cookie(&headers).ok_or(ApiError::Unauthenticated("no console session"))?;
    let claims = state
        .operator_keys
        .verify(token)
        .ok_or(ApiError::Unauthenticated("the console session expired"))?;
    Ok(Json(ConsoleSession {
        csrf_token: state.operator_keys.csrf_token(token),
        expires_at: claims.exp,
    }))
}

#[utoipa::path(delete, path = "/api/v1/console/session", operation_id = "DeleteConsoleSession", tag = "operators",
    responses((status = 204, description = "signed out; the cookie is cleared")))]
pub async fn delete_console_session(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let clear = cookie("", 0, secure(&state, &headers));
    (StatusCode::NO_CONTENT, AppendHeaders([(SET_COOKIE, clear)]))
}
