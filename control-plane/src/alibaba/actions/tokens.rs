//! ApplyToken, RevokeToken, QueryToken over the REST token handlers.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::json;

use super::{Call, Fields, fields};
use crate::alibaba::errors::RpcError;
use crate::api::tokens::{self as rest, ApplyTokenRequest, TokenRequest, TokenStatus};
use crate::extract::ApiJson;

/// `{Token}`. The expiry is capped at 30 days like the REST operation (Alibaba's rule).
pub(super) async fn apply(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?.to_string();
    let req = ApplyTokenRequest {
        resources: p.required("Resources")?.to_string(),
        actions: p.required("Actions")?.to_string(),
        expire_time: p
            .required("ExpireTime")?
            .parse()
            .map_err(|_| RpcError::invalid("ExpireTime", "ExpireTime must be epoch milliseconds."))?,
        access_key_id: None,
    };
    let Json(answer) = rest::apply_token(State(call.state), call.caller, Path(instance_id), ApiJson(req))
        .await
        .map_err(|e| RpcError::from_api(e, "InstanceId"))?;
    Ok(fields(json!({ "Token": answer.token })))
}

fn token_request(call: &Call) -> Result<(String, TokenRequest), RpcError> {
    let instance_id = call.params.required("InstanceId")?.to_string();
    let token = call.params.required("Token")?.to_string();
    Ok((instance_id, TokenRequest { token }))
}

/// No fields; an unknown token is `InvalidParameter.Token`.
pub(super) async fn revoke(call: Call) -> Result<Fields, RpcError> {
    let (instance_id, req) = token_request(&call)?;
    rest::revoke_token(State(call.state), call.caller, Path(instance_id), ApiJson(req))
        .await
        .map_err(|e| RpcError::from_api(e, "Token"))?;
    Ok(Fields::new())
}

/// `{TokenStatus}`: true while the token is valid (not expired, revoked, forged or of another
/// instance).
pub(super) async fn query(call: Call) -> Result<Fields, RpcError> {
    let (instance_id, req) = token_request(&call)?;
    let Json(answer) = rest::query_token(State(call.state), call.caller, Path(instance_id), ApiJson(req))
        .await
        .map_err(|e| RpcError::from_api(e, "Token"))?;
    Ok(fields(json!({ "TokenStatus": answer.status == TokenStatus::Valid })))
}
