//! AddCustomAuthIdentity, UpdateCustomAuthIdentity, DeleteCustomAuthIdentity,
//! QueryCustomAuthIdentity, the same four for permissions, and Add/Delete/QueryCustomAuthConnectBlack
//! over the REST custom-authentication code. Alibaba answers these with `Code` 200, `Success` and
//! `Message` besides `RequestId`, and queries put their page in `Data: {NextToken, Results}`.

use std::str::FromStr;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::{Call, Fields, fields};
use crate::alibaba::errors::RpcError;
use crate::alibaba::params::Params;
use crate::api::custom_auth::{
    self as rest, BlacklistQuery, CustomAuthIdentitySettings, CustomAuthPermission, IdentityQuery, PermissionQuery,
};
use crate::error::ApiError;

/// `{Code: 200, Success: true, Message}` and, for a query, `Data`.
fn done(data: Option<Value>) -> Fields {
    let mut answer = fields(json!({"Code": 200, "Success": true, "Message": "operation success."}));
    if let Some(data) = data {
        answer.insert("Data".into(), data);
    }
    answer
}

/// A REST failure in Alibaba's terms; `subject` is the parameter a "not found" is about.
fn refused(e: ApiError, subject: &str) -> RpcError {
    match e {
        // Here the parameter is `Topic` (SendMessage's is `MqttTopic`).
        ApiError::InvalidParameter { field, message } if field == "topic" => RpcError::invalid("Topic", message),
        e => RpcError::from_api(e, subject),
    }
}

fn parsed<T: FromStr<Err = common::custom_auth::CustomAuthError>>(p: &Params, name: &str) -> Result<T, RpcError> {
    p.required(name)?
        .parse()
        .map_err(|e: common::custom_auth::CustomAuthError| RpcError::invalid(name, format!("{name} {e}.")))
}

fn owned(p: &Params, name: &str) -> Option<String> {
    p.get(name).map(String::from)
}

fn settings(p: &Params) -> Result<CustomAuthIdentitySettings, RpcError> {
    Ok(CustomAuthIdentitySettings {
        secret: p.required("Secret")?.to_string(),
        identity_type: parsed(p, "IdentityType")?,
        client_id: owned(p, "ClientId"),
        sign_mode: parsed(p, "SignMode")?,
    })
}

async fn put_identity(call: Call, update: bool) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?;
    let username = p.required("Username")?;
    rest::put_identity(&call.state, &call.caller, instance_id, username, &settings(p)?, update)
        .await
        .map_err(|e| refused(e, "Username"))?;
    Ok(done(None))
}

pub(super) async fn add_identity(call: Call) -> Result<Fields, RpcError> {
    put_identity(call, false).await
}

pub(super) async fn update_identity(call: Call) -> Result<Fields, RpcError> {
    put_identity(call, true).await
}

/// By username (unique); `IdentityType` and `ClientId` are accepted and need not be sent.
pub(super) async fn delete_identity(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let path = (
        p.required("InstanceId")?.to_string(),
        p.required("Username")?.to_string(),
    );
    rest::delete_custom_auth_identity(State(call.state), call.caller, Path(path))
        .await
        .map_err(|e| refused(e, "Username"))?;
    Ok(done(None))
}

/// `Results: [{Username, IdentityType, ClientId, SignMode}]`: the secret is never returned.
pub(super) async fn query_identity(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?.to_string();
    let query = IdentityQuery {
        username: owned(p, "Username"),
        client_id: owned(p, "ClientId"),
        identity_type: owned(p, "IdentityType"),
        next_token: owned(p, "NextToken"),
        size: p.number("Size")?,
    };
    let Json(page) =
        rest::query_custom_auth_identity(State(call.state), call.caller, Path(instance_id), Ok(Query(query)))
            .await
            .map_err(|e| refused(e, "Username"))?;
    let results: Vec<Value> = page
        .identities
        .into_iter()
        .map(|i| {
            json!({
                "Username": i.username,
                "IdentityType": i.identity_type.as_str(),
                "ClientId": i.client_id,
                "SignMode": i.sign_mode.as_str(),
            })
        })
        .collect();
    Ok(done(Some(json!({"NextToken": page.next_token, "Results": results}))))
}

fn permission(p: &Params) -> Result<CustomAuthPermission, RpcError> {
    Ok(CustomAuthPermission {
        identity_type: parsed(p, "IdentityType")?,
        identity: p.required("Identity")?.to_string(),
        topic: p.required("Topic")?.to_string(),
        permit_action: parsed(p, "PermitAction")?,
        effect: parsed(p, "Effect")?,
    })
}

async fn put_permission(call: Call, update: bool) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?;
    rest::put_permission(&call.state, &call.caller, instance_id, &permission(p)?, update)
        .await
        .map_err(|e| refused(e, "Topic"))?;
    Ok(done(None))
}

pub(super) async fn add_permission(call: Call) -> Result<Fields, RpcError> {
    put_permission(call, false).await
}

pub(super) async fn update_permission(call: Call) -> Result<Fields, RpcError> {
    put_permission(call, true).await
}

pub(super) async fn delete_permission(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?;
    let identity_type = parsed(p, "IdentityType")?;
    let (identity, topic) = (p.required("Identity")?, p.required("Topic")?);
    rest::remove_permission(&call.state, &call.caller, instance_id, identity_type, identity, topic)
        .await
        .map_err(|e| refused(e, "Topic"))?;
    Ok(done(None))
}

/// `Results: [{Identity, IdentityType, Topic, PermitAction, Effect}]`.
pub(super) async fn query_permission(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?.to_string();
    let query = PermissionQuery {
        identity: owned(p, "Identity"),
        identity_type: owned(p, "IdentityType"),
        topic: owned(p, "Topic"),
        next_token: owned(p, "NextToken"),
        size: p.number("Size")?,
    };
    let Json(page) =
        rest::query_custom_auth_permission(State(call.state), call.caller, Path(instance_id), Ok(Query(query)))
            .await
            .map_err(|e| refused(e, "Topic"))?;
    let results: Vec<Value> = page
        .permissions
        .into_iter()
        .map(|p| {
            json!({
                "Identity": p.identity,
                "IdentityType": p.identity_type.as_str(),
                "Topic": p.topic,
                "PermitAction": p.permit_action.as_str(),
                "Effect": p.effect.as_str(),
            })
        })
        .collect();
    Ok(done(Some(json!({"NextToken": page.next_token, "Results": results}))))
}

pub(super) async fn add_connect_black(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let (instance_id, client_id) = (p.required("InstanceId")?, p.required("ClientId")?);
    rest::add_blacklisted(&call.state, &call.caller, instance_id, client_id)
        .await
        .map_err(|e| refused(e, "ClientId"))?;
    Ok(done(None))
}

pub(super) async fn delete_connect_black(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let path = (
        p.required("InstanceId")?.to_string(),
        p.required("ClientId")?.to_string(),
    );
    rest::delete_custom_auth_connect_black(State(call.state), call.caller, Path(path))
        .await
        .map_err(|e| refused(e, "ClientId"))?;
    Ok(done(None))
}

/// `Results: [{ClientId, Effect: DENY, PermitAction: CONNECT}]` *(compat)*.
pub(super) async fn query_connect_black(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?.to_string();
    let query = BlacklistQuery {
        client_id: owned(p, "ClientId"),
        next_token: owned(p, "NextToken"),
        size: p.number("Size")?,
    };
    let Json(page) =
        rest::query_custom_auth_connect_black(State(call.state), call.caller, Path(instance_id), Ok(Query(query)))
            .await
            .map_err(|e| refused(e, "ClientId"))?;
    let results: Vec<Value> = page
        .entries
        .into_iter()
        .map(|e| json!({"ClientId": e.client_id, "Effect": "DENY", "PermitAction": "CONNECT"}))
        .collect();
    Ok(done(Some(json!({"NextToken": page.next_token, "Results": results}))))
}
