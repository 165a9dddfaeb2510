//! Group IDs (Alibaba: CreateGroupId, ListGroupId, DeleteGroupId): classes of devices, created per
//! instance before clients use them. `GID_`/`GID-` prefix (upper case), 7-64 chars, unique per instance.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::db::groups::{self, GroupRow};
use crate::db::{ConfigTx, instances};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroupIdRequest {
    /// `GID_` or `GID-` prefix, 7-64 chars of `[A-Za-z0-9_-]`, unique within the instance.
    #[schema(pattern = "^GID[_-][A-Za-z0-9_-]{3,60}$")]
    pub group_id: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupId {
    pub group_id: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupIdList {
    pub group_ids: Vec<GroupId>,
}

impl From<GroupRow> for GroupId {
    fn from(row: GroupRow) -> Self {
        Self {
            group_id: row.group_id,
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/groups", operation_id = "CreateGroupId", tag = "groups",
    params(("instanceId" = String, Path)), request_body = CreateGroupIdRequest, security(("bearer" = []), ("acs3" = [])),
    responses((status = 201, body = GroupId), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_group_id(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<CreateGroupIdRequest>,
) -> ApiResult<(StatusCode, Json<GroupId>)> {
    caller.require_instance(&instance_id)?;
    common::names::validate_group_id(&req.group_id).map_err(|e| ApiError::invalid("groupId", e))?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    tx.lock_instance(&instance_id).await?;
    let group = groups::create(&mut tx, &instance_id, &req.group_id, &req.description).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(group.into())))
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/groups", operation_id = "ListGroupId", tag = "groups",
    params(("instanceId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = GroupIdList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_group_id(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> ApiResult<Json<GroupIdList>> {
    caller.require_instance(&instance_id)?;
    instances::quotas(&state.db, &instance_id).await?;
    let rows = groups::list(&state.db, &instance_id).await?;
    Ok(Json(GroupIdList {
        group_ids: rows.into_iter().map(GroupId::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/groups/{groupId}", operation_id = "GetGroupId", tag = "groups",
    params(("instanceId" = String, Path), ("groupId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = GroupId), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_group_id(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, group_id)): Path<(String, String)>,
) -> ApiResult<Json<GroupId>> {
    caller.require_instance(&instance_id)?;
    instances::quotas(&state.db, &instance_id).await?;
    groups::get(&state.db, &instance_id, &group_id)
        .await?
        .map(|row| Json(row.into()))
        .ok_or(ApiError::NotFound("group id"))
}

#[utoipa::path(delete, path = "/api/v1/instances/{instanceId}/groups/{groupId}", operation_id = "DeleteGroupId", tag = "groups",
    params(("instanceId" = String, Path), ("groupId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_group_id(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, group_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_instance(&instance_id)?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    tx.lock_instance(&instance_id).await?;
    if !groups::delete(&mut tx, &instance_id, &group_id).await? {
        return Err(ApiError::NotFound("group id"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
