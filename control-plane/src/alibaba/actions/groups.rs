//! CreateGroupId, DeleteGroupId, ListGroupId over the REST group handlers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;

use super::{Call, Fields, epoch_ms, fields, tag_filter};
use crate::alibaba::errors::RpcError;
use crate::api::groups::{self as rest, CreateGroupIdRequest};
use crate::error::ApiError;
use crate::extract::ApiJson;

/// No fields. A taken name is `GroupIdAlreadyExsited` *(compat: Alibaba's spelling)*; tags cannot
/// be stored, so a non-empty `Tags` is refused.
pub(super) async fn create(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let instance_id = p.required("InstanceId")?.to_string();
    let group_id = p.required("GroupId")?.to_string();
    if tag_filter(p)? {
        return Err(RpcError::invalid("Tags", "Tags are not supported here."));
    }
    let req = CreateGroupIdRequest {
        group_id,
        description: String::new(),
    };
    match rest::create_group_id(State(call.state), call.caller, Path(instance_id), ApiJson(req)).await {
        Ok(_) => Ok(Fields::new()),
        Err(ApiError::AlreadyExists(_)) => Err(RpcError::new(
            StatusCode::BAD_REQUEST,
            "GroupIdAlreadyExsited",
            "The specified GroupId already exists.",
        )),
        Err(e) => Err(RpcError::from_api(e, "GroupId")),
    }
}

/// No fields; deleting a group deletes its device credentials, as on the REST API.
pub(super) async fn delete(call: Call) -> Result<Fields, RpcError> {
    let p = &call.params;
    let path = (
        p.required("InstanceId")?.to_string(),
        p.required("GroupId")?.to_string(),
    );
    rest::delete_group_id(State(call.state), call.caller, Path(path))
        .await
        .map_err(|e| RpcError::from_api(e, "GroupId"))?;
    Ok(Fields::new())
}

/// `{Data: [{GroupId, InstanceId, CreateTime, UpdateTime, IndependentNaming, Tags}]}`. Group names
/// are unique per instance here, which is what `IndependentNaming: true` means.
pub(super) async fn list(call: Call) -> Result<Fields, RpcError> {
    let instance_id = call.params.required("InstanceId")?.to_string();
    let tagged_only = tag_filter(&call.params)?;
    let Json(list) = rest::list_group_id(State(call.state), call.caller, Path(instance_id.clone()))
        .await
        .map_err(|e| RpcError::from_api(e, "InstanceId"))?;
    let data: Vec<_> = list
        .group_ids
        .into_iter()
        .filter(|_| !tagged_only)
        .map(|g| {
            json!({
                "GroupId": g.group_id,
                "InstanceId": instance_id,
                "CreateTime": epoch_ms(g.created_at),
                "UpdateTime": epoch_ms(g.updated_at),
                "IndependentNaming": true,
                "Tags": [],
            })
        })
        .collect();
    Ok(fields(json!({ "Data": data })))
}
