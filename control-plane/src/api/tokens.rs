//! Client tokens *(compat: ApplyToken, RevokeToken, QueryToken)*: Ed25519-signed
//! `common::token::TokenClaims` that brokers verify offline. Every issued token is recorded (id, hash,
//! claims) so it can be revoked or queried by its string; revocations reach brokers via the snapshot.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use common::quotas::{TOKEN_MAX_VALIDITY_MS, TOKEN_MIN_VALIDITY_MS};
use common::token::{TokenAction, TokenClaims, TokenError, TokenVerifier};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::auth::acs3::sha256_hex;
use crate::db::tokens::{self, IssueContext, StoredToken};
use crate::db::{ConfigTx, instances};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyTokenRequest {
    /// Comma-separated topics or filters (`+`, `#` allowed), each under an existing parent topic.
    pub resources: String,
    /// `R`, `W` or `R,W`.
    pub actions: String,
    /// Expiry in epoch milliseconds: at least now + 60 s; later than now + 30 days is capped.
    pub expire_time: i64,
    /// AccessKey the token is for (clients log in with `Token|<AccessKeyId>|<InstanceId>`). Defaults to
    /// the calling AccessKey; required when an operator applies.
    pub access_key_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyTokenResponse {
    pub token: String,
    /// Effective expiry in epoch milliseconds (after capping).
    pub expire_time: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryTokenResponse {
    pub valid: bool,
    /// `valid`, `expired`, `revoked` or `invalid` (forged, unknown or of another instance).
    #[schema(value_type = String)]
    pub status: TokenStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<i64>,
}

/// What QueryToken found, serialized in lower case. The OpenAPI document describes `status` as a
/// string, so that existing generated clients keep working.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Valid,
    Expired,
    Revoked,
    Invalid,
}

/// Largest MQTT password (a two-byte length prefix on the wire).
const MAX_MQTT_PASSWORD: usize = 65_535;

/// Splits and checks the resource list; returns the resources and their distinct parent topics.
fn parse_resources(raw: &str, max: usize, max_len: usize) -> ApiResult<(Vec<String>, Vec<String>)> {
    let resources: Vec<String> = raw.split(',').map(|r| r.trim().to_string()).collect();
    if resources.len() > max {
        return Err(ApiError::invalid(
            "resources",
            format!("at most {max} resources per token"),
        ));
    }
    let mut parents = Vec::new();
    for r in &resources {
        common::topic::validate_topic_filter(r, max_len)
            .map_err(|e| ApiError::invalid("resources", format!("{r:?}: {e}")))?;
        parents.push(common::topic::parent_of(r).to_string());
    }
    parents.sort();
    parents.dedup();
    Ok((resources, parents))
}

/// The AccessKey named in the token: the caller's own, or for operators one bound to the instance.
fn token_access_key(caller: &Caller, requested: Option<String>, requested_is_bound: bool) -> ApiResult<String> {
    if let Some(own) = caller.access_key_id() {
        return match requested {
            Some(other) if other != own => Err(ApiError::invalid("accessKeyId", "must be the calling AccessKey")),
            _ => Ok(own.to_string()),
        };
    }
    let ak = requested.ok_or_else(|| ApiError::invalid("accessKeyId", "is required when an operator applies"))?;
    if !requested_is_bound {
        return Err(ApiError::invalid(
            "accessKeyId",
            "is not an AccessKey bound to this instance",
        ));
    }
    Ok(ak)
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/tokens", operation_id = "ApplyToken", tag = "tokens",
    params(("instanceId" = String, Path)), request_body = ApplyTokenRequest, security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = ApplyTokenResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn apply_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<ApplyTokenRequest>,
) -> ApiResult<Json<ApplyTokenResponse>> {
    caller.require_instance(&instance_id)?;
    // Two round trips in all (this is the hot path): quotas with the binding check, then the insert
    // guarded by the parent-topic check.
    let IssueContext {
        quotas,
        access_key_bound,
    } = tokens::issue_context(&state.db, &instance_id, req.access_key_id.as_deref())
        .await?
        .ok_or(ApiError::NotFound("instance"))?;
    let act =
        TokenAction::parse_api(&req.actions).ok_or_else(|| ApiError::invalid("actions", "must be R, W or R,W"))?;
    let now = crate::clock::now_ms();
    if req.expire_time < now + TOKEN_MIN_VALIDITY_MS {
        return Err(ApiError::invalid(
            "expireTime",
            "must be at least 60 seconds in the future (epoch ms)",
        ));
    }
    // Longer validity is accepted and silently capped *(compat)*.
    let exp_ms = req.expire_time.min(now + TOKEN_MAX_VALIDITY_MS);
    let (res, parents) = parse_resources(
        &req.resources,
        quotas.max_token_resources as usize,
        quotas.max_topic_length as usize,
    )?;
    let ak = token_access_key(&caller, req.access_key_id, access_key_bound)?;
    let claims = TokenClaims {
        jti: crate::ids::token_id(),
        iid: instance_id.clone(),
        ak,
        res,
        act,
        iat_ms: now,
        exp_ms,
    };
    let token = state.token_signer.sign(&claims);
    // Clients send the token as the MQTT password `<actions>|<token>`, at most 65,535 bytes.
    if token.len() + "R,W|".len() > MAX_MQTT_PASSWORD {
        return Err(ApiError::invalid(
            "resources",
            format!(
                "the token would be {} bytes, more than an MQTT password holds ({MAX_MQTT_PASSWORD}); use fewer or shorter resources",
                token.len()
            ),
        ));
    }
    if !tokens::record(&state.db, &claims, &sha256_hex(token.as_bytes()), &parents).await? {
        return Err(ApiError::invalid(
            "resources",
            "every resource must be under an existing parent topic",
        ));
    }
    Ok(Json(ApplyTokenResponse {
        token,
        expire_time: exp_ms,
    }))
}

/// The stored token with this string on this instance.
async fn find_token(state: &AppState, instance_id: &str, token: &str) -> ApiResult<Option<StoredToken>> {
    Ok(tokens::find(&state.db, instance_id, &sha256_hex(token.as_bytes())).await?)
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/tokens/revoke", operation_id = "RevokeToken", tag = "tokens",
    params(("instanceId" = String, Path)), request_body = TokenRequest, security(("bearer" = []), ("acs3" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> ApiResult<StatusCode> {
    caller.require_instance(&instance_id)?;
    instances::quotas(&state.db, &instance_id).await?;
    let stored = find_token(&state, &instance_id, &req.token)
        .await?
        .ok_or(ApiError::NotFound("token"))?;
    if !stored.revoked {
        let mut tx = ConfigTx::begin(&state.db).await?;
        tokens::revoke(&mut tx, &instance_id, &stored.jti).await?;
        tx.commit().await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/tokens/query", operation_id = "QueryToken", tag = "tokens",
    params(("instanceId" = String, Path)), request_body = TokenRequest, security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = QueryTokenResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn query_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> ApiResult<Json<QueryTokenResponse>> {
    caller.require_instance(&instance_id)?;
    instances::quotas(&state.db, &instance_id).await?;
    let verifier = TokenVerifier::new([state.token_signer.public_key()]);
    let now = crate::clock::now_ms();
    let answer = |status, expire_time| {
        Json(QueryTokenResponse {
            valid: status == TokenStatus::Valid,
            status,
            expire_time,
        })
    };
    match verifier.verify(&req.token, now) {
        Ok(claims) if claims.iid == instance_id => {}
        Err(TokenError::Expired) => return Ok(answer(TokenStatus::Expired, None)),
        _ => return Ok(answer(TokenStatus::Invalid, None)),
    }
    Ok(match find_token(&state, &instance_id, &req.token).await? {
        Some(t) if t.revoked => answer(TokenStatus::Revoked, Some(t.expires_at_ms)),
        Some(t) => answer(TokenStatus::Valid, Some(t.expires_at_ms)),
        None => answer(TokenStatus::Invalid, None),
    })
}
