//! `Login`: operator username + password -> bearer JWT.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::operator;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Expiry in epoch seconds.
    pub expires_at: i64,
}

#[utoipa::path(post, path = "/api/v1/login", operation_id = "Login", tag = "operators",
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many attempts from this address or for this username; see Retry-After"),
        (status = 503, body = ErrorBody, description = "too many logins being checked at once (ServerBusy), or the database is unavailable; see Retry-After")))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    check_password(&state, peer, &req).await?;
    let (token, expires_at) = state
        .operator_keys
        .issue(&req.username, state.config.operator_token_ttl_secs);
    Ok(Json(LoginResponse { token, expires_at }))
}

/// Checks an operator's password behind the login limits (`auth::login_limit`).
pub(crate) async fn check_password(state: &AppState, peer: SocketAddr, req: &LoginRequest) -> ApiResult<()> {
    let permit = state.logins.admit(peer.ip(), &req.username)?;
    let hash = crate::db::operators::password_hash(&state.db, &req.username).await?;
    // Unknown users still pay for one verification, so timing does not tell which usernames exist.
    let (hash, known) = match hash {
        Some(h) => (h, true),
        None => (operator::DUMMY_HASH.to_string(), false),
    };
    if !operator::verify_password(req.password.clone(), hash, permit).await || !known {
        state.logins.failed(&req.username);
        return Err(ApiError::Unauthenticated("wrong username or password"));
    }
    Ok(())
}
