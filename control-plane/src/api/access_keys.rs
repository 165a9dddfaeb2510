//! AccessKeys: account-level credentials of backend applications, bound to chosen instances.
//! Operator-only. The secret is returned once, by CreateAccessKey, and stored encrypted.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::crypto::Aad;
use crate::db::ConfigTx;
use crate::db::access_keys::{self, AccessKeyRow};
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

#[derive(Serialize, ToSchema)]
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

impl From<AccessKeyRow> for AccessKey {
    fn from(row: AccessKeyRow) -> Self {
        Self {
            access_key_id: row.id,
            enabled: row.enabled,
            description: row.description,
            instance_ids: row.instance_ids,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Replaces the key's bindings; an unknown instance id is a 400 on `instanceIds`.
async fn bind_instances(tx: &mut ConfigTx, id: &str, instance_ids: &[String]) -> ApiResult<()> {
    if !access_keys::bind_instances(tx, id, instance_ids).await? {
        return Err(ApiError::invalid(
            "instanceIds",
            "contains an instance that does not exist",
        ));
    }
    Ok(())
}

/// The key as the transaction left it; it exists, the transaction created or updated it.
async fn fetch(tx: &mut ConfigTx, id: &str) -> ApiResult<AccessKey> {
    let row = access_keys::fetch(tx, id)
        .await?
        .ok_or(ApiError::NotFound("AccessKey"))?;
    Ok(row.into())
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
    let mut tx = ConfigTx::begin(&state.db).await?;
    let secret_enc = state.secrets.encrypt(Aad::AccessKey(&id), secret.as_bytes());
    access_keys::create(&mut tx, &id, &secret_enc, &req.description).await?;
    bind_instances(&mut tx, &id, &req.instance_ids).await?;
    let access_key = fetch(&mut tx, &id).await?;
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
    let rows = access_keys::list(&state.db).await?;
    Ok(Json(AccessKeyList {
        access_keys: rows.into_iter().map(AccessKey::from).collect(),
    }))
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
    access_keys::get(&state.db, &id)
        .await?
        .map(|row| Json(row.into()))
        .ok_or(ApiError::NotFound("AccessKey"))
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
    let mut tx = ConfigTx::begin(&state.db).await?;
    if !access_keys::update(&mut tx, &id, req.enabled, req.description.as_deref()).await? {
        return Err(ApiError::NotFound("AccessKey"));
    }
    if let Some(instance_ids) = &req.instance_ids {
        bind_instances(&mut tx, &id, instance_ids).await?;
    }
    let access_key = fetch(&mut tx, &id).await?;
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
    let mut tx = ConfigTx::begin(&state.db).await?;
    if !access_keys::delete(&mut tx, &id).await? {
        return Err(ApiError::NotFound("AccessKey"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
