//! Parent topics: the first level of every topic, created per instance before use (SPEC 1-2).
//! Names are case-sensitive like MQTT topics; at most `maxParentTopics` per instance.

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
pub struct CreateTopicRequest {
    /// `[A-Za-z0-9_-]`, 1-64 chars, unique within the instance.
    pub topic: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Serialize, ToSchema, FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Topic {
    pub topic: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct TopicList {
    pub topics: Vec<Topic>,
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/topics", operation_id = "CreateTopic", tag = "topics",
    params(("instanceId" = String, Path)), request_body = CreateTopicRequest, security(("bearer" = []), ("acs3" = [])),
    responses((status = 201, body = Topic), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_topic(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<CreateTopicRequest>,
) -> ApiResult<(StatusCode, Json<Topic>)> {
    caller.require_instance(&instance_id)?;
    common::names::validate_parent_topic(&req.topic).map_err(|e| ApiError::invalid("topic", e))?;
    let mut tx = state.db.begin().await?;
    let quotas = lock_instance(&mut tx, &instance_id).await?;
    let (count,): (i64,) = sqlx::query_as("select count(*) from parent_topics where instance_id = $1")
        .bind(&instance_id)
        .fetch_one(&mut *tx)
        .await?;
    if count >= i64::from(quotas.max_parent_topics) {
        return Err(ApiError::QuotaExceeded(format!(
            "the instance already has the maximum of {} parent topics",
            quotas.max_parent_topics
        )));
    }
    let topic: Topic = sqlx::query_as(
        "insert into parent_topics (instance_id, name, description) values ($1, $2, $3)
         returning name as topic, description, created_at, updated_at",
    )
    .bind(&instance_id)
    .bind(&req.topic)
    .bind(&req.description)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| conflict(e, || format!("parent topic {:?} already exists", req.topic)))?;
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(topic)))
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/topics", operation_id = "ListTopics", tag = "topics",
    params(("instanceId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = TopicList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_topics(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> ApiResult<Json<TopicList>> {
    caller.require_instance(&instance_id)?;
    instance_quotas(&state.db, &instance_id).await?;
    let topics = sqlx::query_as(
        "select name as topic, description, created_at, updated_at from parent_topics
         where instance_id = $1 order by name",
    )
    .bind(&instance_id)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(TopicList { topics }))
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/topics/{topic}", operation_id = "GetTopic", tag = "topics",
    params(("instanceId" = String, Path), ("topic" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = Topic), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_topic(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, topic)): Path<(String, String)>,
) -> ApiResult<Json<Topic>> {
    caller.require_instance(&instance_id)?;
    instance_quotas(&state.db, &instance_id).await?;
    sqlx::query_as(
        "select name as topic, description, created_at, updated_at from parent_topics
         where instance_id = $1 and name = $2",
    )
    .bind(&instance_id)
    .bind(&topic)
    .fetch_optional(&state.db)
    .await?
    .map(Json)
    .ok_or(ApiError::NotFound("parent topic"))
}

#[utoipa::path(delete, path = "/api/v1/instances/{instanceId}/topics/{topic}", operation_id = "DeleteTopic", tag = "topics",
    params(("instanceId" = String, Path), ("topic" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_topic(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, topic)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_instance(&instance_id)?;
    let mut tx = state.db.begin().await?;
    lock_instance(&mut tx, &instance_id).await?;
    let deleted = sqlx::query("delete from parent_topics where instance_id = $1 and name = $2")
        .bind(&instance_id)
        .bind(&topic)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound("parent topic"));
    }
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
