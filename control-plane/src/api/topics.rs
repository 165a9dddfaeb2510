//! Parent topics: the first level of every topic, created per instance before use (docs/spec.md 1-2).
//! Names are case-sensitive like MQTT topics; at most `maxParentTopics` per instance.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::db::topics::{self, TopicRow};
use crate::db::{ConfigTx, instances};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTopicRequest {
    /// `[A-Za-z0-9_-]`, 1-64 chars, unique within the instance.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub topic: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Serialize, ToSchema)]
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

impl From<TopicRow> for Topic {
    fn from(row: TopicRow) -> Self {
        Self {
            topic: row.name,
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
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
    let mut tx = ConfigTx::begin(&state.db).await?;
    let quotas = tx.lock_instance(&instance_id).await?;
    if topics::count(&mut tx, &instance_id).await? >= i64::from(quotas.max_parent_topics) {
        return Err(ApiError::QuotaExceeded(format!(
            "the instance already has the maximum of {} parent topics",
            quotas.max_parent_topics
        )));
    }
    let topic = topics::create(&mut tx, &instance_id, &req.topic, &req.description).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(topic.into())))
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
    instances::quotas(&state.db, &instance_id).await?;
    let rows = topics::list(&state.db, &instance_id).await?;
    Ok(Json(TopicList {
        topics: rows.into_iter().map(Topic::from).collect(),
    }))
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
    instances::quotas(&state.db, &instance_id).await?;
    topics::get(&state.db, &instance_id, &topic)
        .await?
        .map(|row| Json(row.into()))
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
    let mut tx = ConfigTx::begin(&state.db).await?;
    tx.lock_instance(&instance_id).await?;
    if !topics::delete(&mut tx, &instance_id, &topic).await? {
        return Err(ApiError::NotFound("parent topic"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
