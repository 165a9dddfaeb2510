//! RegisterDeviceCredential, GetDeviceCredential, RefreshDeviceCredential,
//! UnRegisterDeviceCredential, ListDeviceCredentialClientId over the REST device-credential code.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::json;

use super::{Call, Fields, epoch_ms, fields};
use crate::alibaba::errors::RpcError;
use crate::api::devices::{self as rest, DeviceCredential, Existing, ListParams};

fn client_path(call: &Call) -> Result<(String, String), RpcError> {
    Ok((
        call.params.required("InstanceId")?.to_string(),
        call.params.required("ClientId")?.to_string(),
    ))
}

/// `{DeviceCredential: {ClientId, InstanceId, DeviceAccessKeyId, DeviceAccessKeySecret,
/// CreateTime, UpdateTime}}`.
fn credential(instance_id: &str, c: DeviceCredential) -> Fields {
    fields(json!({
        "DeviceCredential": {
            "ClientId": c.client_id,
            "InstanceId": instance_id,
            "DeviceAccessKeyId": c.device_access_key_id,
            "DeviceAccessKeySecret": c.device_access_key_secret,
            "CreateTime": epoch_ms(c.created_at),
            "UpdateTime": epoch_ms(c.updated_at),
        }
    }))
}

/// Registering a client ID that has a credential replaces it with a new key pair *(compat)*; the
/// REST operation answers 409 instead.
pub(super) async fn register(call: Call) -> Result<Fields, RpcError> {
    let (instance_id, client_id) = client_path(&call)?;
    let c = rest::register(&call.state, &call.caller, &instance_id, &client_id, Existing::Replace)
        .await
        .map_err(|e| RpcError::from_api(e, "ClientId"))?;
    Ok(credential(&instance_id, c))
}

pub(super) async fn get(call: Call) -> Result<Fields, RpcError> {
    let (instance_id, client_id) = client_path(&call)?;
    let Json(c) = rest::get_device_credential(State(call.state), call.caller, Path((instance_id.clone(), client_id)))
        .await
        .map_err(|e| RpcError::from_api(e, "ClientId"))?;
    Ok(credential(&instance_id, c))
}

/// Same DeviceAccessKeyId, new secret.
pub(super) async fn refresh(call: Call) -> Result<Fields, RpcError> {
    let (instance_id, client_id) = client_path(&call)?;
    let Json(c) =
        rest::refresh_device_credential(State(call.state), call.caller, Path((instance_id.clone(), client_id)))
            .await
            .map_err(|e| RpcError::from_api(e, "ClientId"))?;
    Ok(credential(&instance_id, c))
}

pub(super) async fn unregister(call: Call) -> Result<Fields, RpcError> {
    let path = client_path(&call)?;
    rest::unregister_device_credential(State(call.state), call.caller, Path(path))
        .await
        .map_err(|e| RpcError::from_api(e, "ClientId"))?;
    Ok(Fields::new())
}

/// `{DeviceCredentialClientIdList: {ClientIdList, PageNo, PageSize, Total, NextToken}}`, the numbers
/// as strings *(compat)*. `NextToken` is the number of the next page, present while there is one;
/// given in a request it takes the place of `PageNo`.
pub(super) async fn list_client_ids(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?.to_string();
    let page_no = match p.get("NextToken") {
        Some(_) => p.number("NextToken")?,
        None => p.number("PageNo")?,
    };
    let params = ListParams {
        group_id: Some(p.required("GroupId")?.to_string()),
        page_no,
        page_size: p.number("PageSize")?,
    };
    let Json(page) =
        rest::list_device_credential_client_id(State(call.state), call.caller, Path(instance_id), Ok(Query(params)))
            .await
            .map_err(|e| RpcError::from_api(e, "GroupId"))?;
    let seen = i64::from(page.page_no - 1) * i64::from(page.page_size) + page.client_ids.len() as i64;
    let mut list = json!({
        "ClientIdList": page.client_ids,
        "PageNo": page.page_no.to_string(),
        "PageSize": page.page_size.to_string(),
        "Total": page.total.to_string(),
    });
    if seen < page.total {
        list["NextToken"] = (page.page_no + 1).to_string().into();
    }
    Ok(fields(json!({ "DeviceCredentialClientIdList": list })))
}
