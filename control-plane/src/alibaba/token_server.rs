//! The legacy token server *(compat)*: `/token/apply`, `/token/revoke` and `/token/query`, which
//! older device backends call instead of the ApplyToken / RevokeToken / QueryToken actions.
//!
//! Parameters come as a form (POST) or in the query string (GET). The caller names its AccessKey in
//! `accessKey` and signs: `signature = Base64(HMAC-SHA1(AccessKeySecret, S))` where `S` is the signed
//! parameters as `key=value`, sorted by key, joined by `&`, unencoded; a value made of
//! comma-separated parts is signed with its parts sorted (Alibaba's rule for multi-valued
//! parameters), and the value as sent is accepted too. apply signs `actions`, `expireTime`,
//! `instanceId`, `resources` and `serviceName` (and also sends `accessKey`, `proxyType=MQTT`,
//! `serviceName=mq`); revoke and query sign `token`. The answer is always HTTP 200 with JSON
//! `{success, message, code, tokenData}`: code 200 success, 400 bad parameters, 407 signature (or
//! AccessKey) refused, 409 the token could not be created, 410 revocation failed, and for a queried
//! token 1 forged or unreadable, 2 expired, 3 revoked.
//!
//! The protocol has no timestamp or nonce, so the signature of an apply request is remembered until
//! the token it asked for expires and a replay of it is refused (407). Behind it are the REST token
//! handlers, with the AccessKey as caller.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::routing::get;
use common::token::TokenVerifier;
use serde::Serialize;

use super::params;
use super::params::Params;
use crate::api::tokens::{self as rest, ApplyTokenRequest, TokenRequest, TokenStatus};
use crate::auth::{Caller, access_key};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/token/apply", get(apply).post(apply))
        .route("/token/revoke", get(revoke).post(revoke))
        .route("/token/query", get(query).post(query))
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Answer {
    success: bool,
    message: String,
    code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_data: Option<String>,
}

impl Answer {
    fn ok(token_data: Option<String>) -> Json<Self> {
        Json(Self {
            success: true,
            message: "success".into(),
            code: 200,
            token_data,
        })
    }

    fn fail(code: i32, message: impl Into<String>) -> Json<Self> {
        Json(Self {
            success: false,
            message: message.into(),
            code,
            token_data: None,
        })
    }
}

const BAD_PARAMETER: i32 = 400;
const BAD_SIGNATURE: i32 = 407;
const NOT_CREATED: i32 = 409;
const NOT_REVOKED: i32 = 410;

type Refusal = Json<Answer>;

fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, Refusal> {
    p.get(name)
        .ok_or_else(|| Answer::fail(BAD_PARAMETER, format!("{name} is required")))
}

/// `key=value` of `signed`, sorted by key, joined by `&`; with `sort_parts` each value's
/// comma-separated parts are sorted first.
fn string_to_sign(p: &Params, signed: &[&str], sort_parts: bool) -> String {
    let values: Vec<(&str, String)> = signed
        .iter()
        .map(|name| {
            let value = p.get(name).unwrap_or_default();
            let value = if sort_parts {
                let mut parts: Vec<&str> = value.split(',').collect();
                parts.sort_unstable();
                parts.join(",")
            } else {
                value.to_string()
            };
            (*name, value)
        })
        .collect();
    common::signing::online_query_string_to_sign(values.iter().map(|(k, v)| (*k, v.as_str())))
}

/// Checks `accessKey` and `signature` over `signed`; returns the caller and the signature.
async fn authenticate<'a>(state: &AppState, p: &'a Params, signed: &[&str]) -> Result<(Caller, &'a str), Refusal> {
    let access_key_id = required(p, "accessKey")?;
    let signature = required(p, "signature")?;
    for name in signed {
        required(p, name)?;
    }
    let secret = match access_key::signing_secret(state, access_key_id).await {
        Ok(secret) => secret,
        Err(ApiError::Unauthenticated(m)) => return Err(Answer::fail(BAD_SIGNATURE, m)),
        Err(e) => return Err(internal(e)),
    };
    let matches = [true, false].iter().any(|&sort_parts| {
        let expected =
            common::signing::hmac_sha1_base64(secret.as_bytes(), string_to_sign(p, signed, sort_parts).as_bytes());
        common::signing::constant_time_eq(expected.as_bytes(), signature.as_bytes())
    });
    if !matches {
        return Err(Answer::fail(BAD_SIGNATURE, "signature does not match"));
    }
    let caller = access_key::caller(state, access_key_id.to_string())
        .await
        .map_err(internal)?;
    Ok((caller, signature))
}

fn internal(e: ApiError) -> Refusal {
    if let ApiError::Internal(e) = &e {
        tracing::error!(error = format!("{e:#}"), "token server request failed");
    }
    Answer::fail(500, "internal error")
}

async fn read(req: Request) -> Result<Params, Refusal> {
    params::read(req)
        .await
        .map(|(_, _, p)| p)
        .map_err(|e| Answer::fail(BAD_PARAMETER, e.message))
}

async fn apply(State(state): State<AppState>, req: Request) -> Json<Answer> {
    apply_inner(&state, req).await.unwrap_or_else(|refusal| refusal)
}

async fn apply_inner(state: &AppState, req: Request) -> Result<Json<Answer>, Refusal> {
    let p = read(req).await?;
    let signed = ["actions", "expireTime", "instanceId", "resources", "serviceName"];
    let (caller, signature) = authenticate(state, &p, &signed).await?;
    if p.get("serviceName") != Some("mq") {
        return Err(Answer::fail(BAD_PARAMETER, "serviceName must be mq"));
    }
    if p.get("proxyType").is_some_and(|t| t != "MQTT") {
        return Err(Answer::fail(BAD_PARAMETER, "proxyType must be MQTT"));
    }
    let expire_time: i64 = required(&p, "expireTime")?
        .parse()
        .map_err(|_| Answer::fail(BAD_PARAMETER, "expireTime must be epoch milliseconds"))?;
    // No nonce in this protocol: the signature itself is accepted once while the token could live.
    let window_secs = (expire_time - crate::clock::now_ms()).clamp(0, common::quotas::TOKEN_MAX_VALIDITY_MS) / 2000;
    match access_key::record_nonce(
        state,
        caller.access_key_id().unwrap_or_default(),
        &format!("token/apply:{signature}"),
        window_secs,
    )
    .await
    {
        Ok(()) => {}
        Err(ApiError::NonceReplayed) => {
            return Err(Answer::fail(BAD_SIGNATURE, "this signed request was used already"));
        }
        Err(e) => return Err(internal(e)),
    }
    let req = ApplyTokenRequest {
        resources: required(&p, "resources")?.to_string(),
        actions: required(&p, "actions")?.to_string(),
        expire_time,
        access_key_id: None,
    };
    let instance_id = required(&p, "instanceId")?.to_string();
    match rest::apply_token(State(state.clone()), caller, Path(instance_id), ApiJson(req)).await {
        Ok(Json(answer)) => Ok(Answer::ok(Some(answer.token))),
        Err(ApiError::InvalidParameter { field, message }) => {
            Err(Answer::fail(BAD_PARAMETER, format!("{field}: {message}")))
        }
        Err(e @ ApiError::Internal(_)) => Err(internal(e)),
        Err(e) => Err(Answer::fail(NOT_CREATED, e.to_string())),
    }
}

/// The instance a token names, read from the token itself once its signature is checked (its
/// expiry is left to the handlers, which tell an expired token apart).
fn token_instance(state: &AppState, token: &str) -> Option<String> {
    TokenVerifier::new([state.token_signer.public_key()])
        .verify(token, i64::MIN)
        .ok()
        .map(|claims| claims.iid)
}

const FORGED: i32 = 1;
const EXPIRED: i32 = 2;
const REVOKED: i32 = 3;

async fn revoke(State(state): State<AppState>, req: Request) -> Json<Answer> {
    revoke_inner(&state, req).await.unwrap_or_else(|refusal| refusal)
}

/// What revoke and query share: the signed `token`, the caller, and the instance the token names.
async fn token_call(state: &AppState, req: Request) -> Result<(Caller, Path<String>, ApiJson<TokenRequest>), Refusal> {
    let p = read(req).await?;
    let (caller, _) = authenticate(state, &p, &["token"]).await?;
    let token = required(&p, "token")?.to_string();
    let instance_id =
        token_instance(state, &token).ok_or_else(|| Answer::fail(FORGED, "the token is forged or unreadable"))?;
    Ok((caller, Path(instance_id), ApiJson(TokenRequest { token })))
}

async fn revoke_inner(state: &AppState, req: Request) -> Result<Json<Answer>, Refusal> {
    let (caller, instance, token) = token_call(state, req).await?;
    match rest::revoke_token(State(state.clone()), caller, instance, token).await {
        Ok(_) => Ok(Answer::ok(None)),
        Err(e @ ApiError::Internal(_)) => Err(internal(e)),
        Err(e) => Err(Answer::fail(NOT_REVOKED, e.to_string())),
    }
}

async fn query(State(state): State<AppState>, req: Request) -> Json<Answer> {
    query_inner(&state, req).await.unwrap_or_else(|refusal| refusal)
}

async fn query_inner(state: &AppState, req: Request) -> Result<Json<Answer>, Refusal> {
    let (caller, instance, token) = token_call(state, req).await?;
    let Json(answer) = rest::query_token(State(state.clone()), caller, instance, token)
        .await
        .map_err(|e| match e {
            ApiError::Internal(_) => internal(e),
            e => Answer::fail(BAD_PARAMETER, e.to_string()),
        })?;
    Ok(match answer.status {
        TokenStatus::Valid => Answer::ok(None),
        TokenStatus::Expired => Answer::fail(EXPIRED, "the token has expired"),
        TokenStatus::Revoked => Answer::fail(REVOKED, "the token was revoked"),
        TokenStatus::Invalid => Answer::fail(FORGED, "the token is forged or unreadable"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_sorted_pairs_with_sorted_parts() {
        let p = Params::parse(
            Some("serviceName=mq&resources=b%2F%23,a%2F%23&actions=W,R&expireTime=1&instanceId=i&accessKey=ak"),
            None,
        );
        let signed = ["actions", "expireTime", "instanceId", "resources", "serviceName"];
        assert_eq!(
            string_to_sign(&p, &signed, true),
            "actions=R,W&expireTime=1&instanceId=i&resources=a/#,b/#&serviceName=mq"
        );
        assert_eq!(
            string_to_sign(&p, &signed, false),
            "actions=W,R&expireTime=1&instanceId=i&resources=b/#,a/#&serviceName=mq"
        );
    }
}
