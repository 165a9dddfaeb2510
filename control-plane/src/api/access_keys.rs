//! AccessKeys: account-level credentials of backend applications, bound to chosen instances.
//! Operator-only. The secret is returned once, by CreateAccessKey, and stored encrypted.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::crypto::Aad;
use crate::db::bump_config_version;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAccessKeyRequest {
    #[serde(default)]
    pub description: String,
    /// Instances the key may be used on.
    #[serde(default)]
    pub instance_ids: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAccessKeyRequest {
    pub enabled: Option<bool>,
    pub description: Option<String>,
    /// Replaces the set of bound instances.
    pub instance_ids: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema, FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey {
    pub access_key_id: String,
    pub enabled: bool,
    pub description: String,
    pub instance_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAccessKey {
    #[serde(flatten)]
    pub access_key: AccessKey,
    /// Shown only in this answer; store it now.
    pub access_key_secret: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyList {
    pub access_keys: Vec<AccessKey>,
}

const SELECT: &str = "select k.id as access_key_id, k.enabled, k.description, k.created_at, k.updated_at,
    coalesce(array_agg(b.instance_id order by b.instance_id) filter (where b.instance_id is not null), '{}') as instance_ids
    from access_keys k left join access_key_instances b on b.access_key_id = k.id";

async fn fetch(conn: &mut PgConnection, id: &str) -> ApiResult<AccessKey> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} where k.id = $1 group by k.id")))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("AccessKey"))
}

/// Replaces the bindings; unknown instance ids are a 400 on `instanceIds`.
async fn bind_instances(conn: &mut PgConnection, id: &str, instance_ids: &[String]) -> ApiResult<()> {
    let (known,): (i64,) = sqlx::query_as("select count(*) from instances where id = any($1)")
        .bind(instance_ids)
        .fetch_one(&mut *conn)
        .await?;
    let mut unique = instance_ids.to_vec();
    unique.sort();
    unique.dedup();
    if known != unique.len() as i64 {
        return Err(ApiError::invalid(
            "instanceIds",
            "contains an instance that does not exist",
        ));
    }
    sqlx::query("delete from access_key_instances where access_key_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("insert into access_key_instances (access_key_id, instance_id) select $1, unnest($2::text[])")
        .bind(id)
        .bind(&unique)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/access-keys", operation_id = "CreateAccessKey", tag = "access-keys",
    request_body = CreateAccessKeyRequest, security(("bearer" = [])),
    responses((status = 201, body = CreatedAccessKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_access_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateAccessKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedAccessKey>)> {
    caller.require_operator()?;
    let id = crate::ids::access_key_id();
    let secret = crate::ids::access_key_secret();
    let mut tx = state.db.begin().await?;
    sqlx::query("insert into access_keys (id, secret_enc, description) values ($1, $2, $3)")
        .bind(&id)
        .bind(state.secrets.encrypt(Aad::AccessKey(&id), secret.as_bytes()))
        .bind(&req.description)
        .execute(&mut *tx)
        .await?;
    bind_instances(&mut tx, &id, &req.instance_ids).await?;
    let access_key = fetch(&mut tx, &id).await?;
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAccessKey {
            access_key,
            access_key_secret: secret,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/access-keys", operation_id = "ListAccessKeys", tag = "access-keys",
    security(("bearer" = [])), responses((status = 200, body = AccessKeyList), (status = 403, body = ErrorBody)))]
pub async fn list_access_keys(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<AccessKeyList>> {
    caller.require_operator()?;
    let access_keys = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} group by k.id order by k.created_at, k.id"
    )))
    .fetch_all(&state.db)
    .await?;
    Ok(Json(AccessKeyList { access_keys }))
}

#[utoipa::path(get, path = "/api/v1/access-keys/{accessKeyId}", operation_id = "GetAccessKey", tag = "access-keys",
    params(("accessKeyId" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = AccessKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_access_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AccessKey>> {
    caller.require_operator()?;
    let mut conn = state.db.acquire().await?;
    Ok(Json(fetch(&mut conn, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/access-keys/{accessKeyId}", operation_id = "UpdateAccessKey", tag = "access-keys",
    params(("accessKeyId" = String, Path)), request_body = UpdateAccessKeyRequest, security(("bearer" = [])),
    responses((status = 200, body = AccessKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn update_access_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateAccessKeyRequest>,
) -> ApiResult<Json<AccessKey>> {
    caller.require_operator()?;
    let mut tx = state.db.begin().await?;
    let updated = sqlx::query(
        "update access_keys set enabled = coalesce($2, enabled), description = coalesce($3, description),
         updated_at = now() where id = $1",
    )
    .bind(&id)
    .bind(req.enabled)
    .bind(&req.description)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(ApiError::NotFound("AccessKey"));
    }
    if let Some(instance_ids) = &req.instance_ids {
        bind_instances(&mut tx, &id, instance_ids).await?;
    }
    let access_key = fetch(&mut tx, &id).await?;
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(access_key))
}

#[utoipa::path(delete, path = "/api/v1/access-keys/{accessKeyId}", operation_id = "DeleteAccessKey", tag = "access-keys",
    params(("accessKeyId" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_access_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_operator()?;
    let mut tx = state.db.begin().await?;
    let deleted = sqlx::query("delete from access_keys where id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound("AccessKey"));
    }
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
