//! Group IDs (Alibaba: CreateGroupId, ListGroupId, DeleteGroupId): classes of devices, created per
//! instance before clients use them. `GID_`/`GID-` prefix (upper case), 7-64 chars, unique per instance.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use super::instances::{instance_quotas, lock_instance};
use crate::auth::Caller;
use crate::db::{bump_config_version, conflict};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroupIdRequest {
    /// `GID_` or `GID-` prefix, 7-64 chars of `[A-Za-z0-9_-]`, unique within the instance.
    pub group_id: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Serialize, ToSchema, FromRow)]
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
    let mut tx = state.db.begin().await?;
    lock_instance(&mut tx, &instance_id).await?;
    let group: GroupId = sqlx::query_as(
        "insert into group_ids (instance_id, group_id, description) values ($1, $2, $3)
         returning group_id, description, created_at, updated_at",
    )
    .bind(&instance_id)
    .bind(&req.group_id)
    .bind(&req.description)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| conflict(e, || format!("group ID {:?} already exists", req.group_id)))?;
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(group)))
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
    instance_quotas(&state.db, &instance_id).await?;
    let group_ids = sqlx::query_as(
        "select group_id, description, created_at, updated_at from group_ids
         where instance_id = $1 order by group_id",
    )
    .bind(&instance_id)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(GroupIdList { group_ids }))
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
    instance_quotas(&state.db, &instance_id).await?;
    sqlx::query_as(
        "select group_id, description, created_at, updated_at from group_ids
         where instance_id = $1 and group_id = $2",
    )
    .bind(&instance_id)
    .bind(&group_id)
    .fetch_optional(&state.db)
    .await?
    .map(Json)
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
    let mut tx = state.db.begin().await?;
    lock_instance(&mut tx, &instance_id).await?;
    let deleted = sqlx::query("delete from group_ids where instance_id = $1 and group_id = $2")
        .bind(&instance_id)
        .bind(&group_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound("group id"));
    }
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
