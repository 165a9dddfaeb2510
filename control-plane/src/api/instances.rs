//! Instances: the tenants. Create/update/delete are operator-only; an AccessKey sees only the
//! instances it is bound to.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::quotas::Quotas;
use serde::{Deserialize, Serialize};
use sqlx::types::Json as Jsonb;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use super::quotas::{QuotasPatch, QuotasView};
use crate::auth::Caller;
use crate::db::{bump_config_version, conflict};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInstanceRequest {
    /// 3-64 chars of `[A-Za-z0-9_-]`, unique (case-insensitive).
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub quotas: QuotasPatch,
    #[serde(default)]
    pub reject_duplicate_client_id: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateInstanceRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub quotas: Option<QuotasPatch>,
    pub reject_duplicate_client_id: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub instance_id: String,
    pub name: String,
    pub description: String,
    pub quotas: QuotasView,
    pub reject_duplicate_client_id: bool,
    /// Public MQTT endpoints clients connect to.
    pub endpoints: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Current counts against the quotas (only in GetInstance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Serialize, ToSchema, FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub parent_topics: i64,
    pub group_ids: i64,
    pub device_credentials: i64,
    pub access_keys: i64,
}

#[derive(Serialize, ToSchema)]
pub struct InstanceList {
    pub instances: Vec<Instance>,
}

#[derive(FromRow)]
struct InstanceRow {
    id: String,
    name: String,
    description: String,
    quotas: Jsonb<Quotas>,
    reject_duplicate_client_id: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl InstanceRow {
    fn into_api(self, state: &AppState, usage: Option<Usage>) -> Instance {
        Instance {
            instance_id: self.id,
            name: self.name,
            description: self.description,
            quotas: QuotasView::from(&self.quotas.0),
            reject_duplicate_client_id: self.reject_duplicate_client_id,
            endpoints: state.config.mqtt_endpoints.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            usage,
        }
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    common::names::validate_instance_name(name).map_err(|e| ApiError::invalid("name", e))
}

fn name_taken(name: &str) -> impl FnOnce() -> String + '_ {
    move || format!("an instance named {name:?} already exists")
}

/// Quotas of an existing instance; with `for update` it also serializes quota checks of concurrent
/// creations inside the instance. 404 when it does not exist.
pub async fn lock_instance(conn: &mut PgConnection, instance_id: &str) -> ApiResult<Quotas> {
    let row: Option<(Jsonb<Quotas>,)> = sqlx::query_as("select quotas from instances where id = $1 for update")
        .bind(instance_id)
        .fetch_optional(conn)
        .await?;
    row.map(|(q,)| q.0).ok_or(ApiError::NotFound("instance"))
}

/// Quotas of an existing instance, without locking.
pub async fn instance_quotas(db: &sqlx::PgPool, instance_id: &str) -> ApiResult<Quotas> {
    let row: Option<(Jsonb<Quotas>,)> = sqlx::query_as("select quotas from instances where id = $1")
        .bind(instance_id)
        .fetch_optional(db)
        .await?;
    row.map(|(q,)| q.0).ok_or(ApiError::NotFound("instance"))
}

async fn fetch(db: &sqlx::PgPool, id: &str) -> ApiResult<InstanceRow> {
    sqlx::query_as::<_, InstanceRow>(
        "select id, name, description, quotas, reject_duplicate_client_id, created_at, updated_at
         from instances where id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound("instance"))
}

#[utoipa::path(post, path = "/api/v1/instances", operation_id = "CreateInstance", tag = "instances",
    request_body = CreateInstanceRequest, security(("bearer" = [])),
    responses((status = 201, body = Instance), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_instance(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateInstanceRequest>,
) -> ApiResult<(StatusCode, Json<Instance>)> {
    caller.require_operator()?;
    check_name(&req.name)?;
    let quotas = req.quotas.apply(Quotas::default())?;
    let mut tx = state.db.begin().await?;
    let row = sqlx::query_as::<_, InstanceRow>(
        "insert into instances (id, name, description, quotas, reject_duplicate_client_id)
         values ($1, $2, $3, $4, $5)
         returning id, name, description, quotas, reject_duplicate_client_id, created_at, updated_at",
    )
    .bind(crate::ids::instance_id())
    .bind(&req.name)
    .bind(&req.description)
    .bind(Jsonb(&quotas))
    .bind(req.reject_duplicate_client_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| conflict(e, name_taken(&req.name)))?;
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into_api(&state, None))))
}

#[utoipa::path(get, path = "/api/v1/instances", operation_id = "ListInstances", tag = "instances",
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = InstanceList), (status = 401, body = ErrorBody)))]
pub async fn list_instances(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<InstanceList>> {
    // An AccessKey lists only its bound instances; an operator (no key) lists all.
    let rows: Vec<InstanceRow> = sqlx::query_as(
        "select id, name, description, quotas, reject_duplicate_client_id, created_at, updated_at
         from instances i
         where $1::text is null
            or exists(select 1 from access_key_instances b where b.instance_id = i.id and b.access_key_id = $1)
         order by created_at, id",
    )
    .bind(caller.access_key_id())
    .fetch_all(&state.db)
    .await?;
    let instances = rows.into_iter().map(|r| r.into_api(&state, None)).collect();
    Ok(Json(InstanceList { instances }))
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}", operation_id = "GetInstance", tag = "instances",
    params(("instanceId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = Instance), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Instance>> {
    caller.require_instance(&id)?;
    let row = fetch(&state.db, &id).await?;
    let usage: Usage = sqlx::query_as(
        "select (select count(*) from parent_topics where instance_id = $1) as parent_topics,
                (select count(*) from group_ids where instance_id = $1) as group_ids,
                (select count(*) from device_credentials where instance_id = $1) as device_credentials,
                (select count(*) from access_key_instances where instance_id = $1) as access_keys",
    )
    .bind(&id)
    .fetch_one(&state.db)
    .await?;
    Ok(Json(row.into_api(&state, Some(usage))))
}

#[utoipa::path(patch, path = "/api/v1/instances/{instanceId}", operation_id = "UpdateInstance", tag = "instances",
    params(("instanceId" = String, Path)), request_body = UpdateInstanceRequest, security(("bearer" = [])),
    responses((status = 200, body = Instance), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateInstanceRequest>,
) -> ApiResult<Json<Instance>> {
    caller.require_instance(&id)?;
    caller.require_operator()?;
    if let Some(name) = &req.name {
        check_name(name)?;
    }
    let mut tx = state.db.begin().await?;
    let current = lock_instance(&mut tx, &id).await?;
    let quotas = match &req.quotas {
        Some(patch) => patch.apply(current)?,
        None => current,
    };
    let row = sqlx::query_as::<_, InstanceRow>(
        "update instances set name = coalesce($2, name), description = coalesce($3, description), quotas = $4,
            reject_duplicate_client_id = coalesce($5, reject_duplicate_client_id), updated_at = now()
         where id = $1
         returning id, name, description, quotas, reject_duplicate_client_id, created_at, updated_at",
    )
    .bind(&id)
    .bind(&req.name)
    .bind(&req.description)
    .bind(Jsonb(&quotas))
    .bind(req.reject_duplicate_client_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| conflict(e, name_taken(req.name.as_deref().unwrap_or_default())))?;
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(row.into_api(&state, None)))
}

#[utoipa::path(delete, path = "/api/v1/instances/{instanceId}", operation_id = "DeleteInstance", tag = "instances",
    params(("instanceId" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_instance(&id)?;
    caller.require_operator()?;
    let mut tx = state.db.begin().await?;
    let deleted = sqlx::query("delete from instances where id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound("instance"));
    }
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
