//! `Login`: operator username + password -> bearer JWT.

use axum::Json;
use axum::extract::State;
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
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let hash = crate::db::operators::password_hash(&state.db, &req.username).await?;
    // Unknown users still pay for one verification, so timing does not tell which usernames exist.
    let (hash, known) = match hash {
        Some(h) => (h, true),
        None => (operator::DUMMY_HASH.to_string(), false),
    };
    if !operator::verify_password(req.password, hash).await || !known {
        return Err(ApiError::Unauthenticated("wrong username or password"));
    }
    let (token, expires_at) = state
        .operator_keys
        .issue(&req.username, state.config.operator_token_ttl_secs);
    Ok(Json(LoginResponse { token, expires_at }))
}
