//! Device credentials *(compat: RegisterDeviceCredential, GetDeviceCredential,
//! RefreshDeviceCredential, UnRegisterDeviceCredential, ListDeviceCredentialClientId)*: one
//! `DC.`-prefixed key pair per client ID, the secret stored encrypted.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};

use super::instances::{instance_quotas, lock_instance};
use crate::auth::Caller;
use crate::crypto::Aad;
use crate::db::{bump_config_version, conflict};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterDeviceCredentialRequest {
    /// `<GroupID>@@@<DeviceID>`; the group must exist in the instance.
    pub client_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCredential {
    pub client_id: String,
    pub device_access_key_id: String,
    pub device_access_key_secret: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct Row {
    client_id: String,
    device_access_key_id: String,
    secret_enc: Vec<u8>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Group whose client IDs are listed (required).
    pub group_id: Option<String>,
    /// 1-based page number [default 1].
    pub page_no: Option<u32>,
    /// 1-100 [default 100].
    pub page_size: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientIdPage {
    pub client_ids: Vec<String>,
    pub page_no: u32,
    pub page_size: u32,
    pub total: i64,
}

impl Row {
    fn into_api(self, state: &AppState) -> ApiResult<DeviceCredential> {
        let secret = state
            .secrets
            .decrypt_string(Aad::Device(&self.device_access_key_id), &self.secret_enc)
            .map_err(ApiError::Internal)?;
        Ok(DeviceCredential {
            client_id: self.client_id,
            device_access_key_id: self.device_access_key_id,
            device_access_key_secret: secret,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const RETURNING: &str = "client_id, device_access_key_id, secret_enc, created_at, updated_at";

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/device-credentials", operation_id = "RegisterDeviceCredential",
    tag = "device-credentials", params(("instanceId" = String, Path)), request_body = RegisterDeviceCredentialRequest,
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 201, body = DeviceCredential), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn register_device_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<RegisterDeviceCredentialRequest>,
) -> ApiResult<(StatusCode, Json<DeviceCredential>)> {
    caller.require_instance(&instance_id)?;
    let mut tx = state.db.begin().await?;
    let quotas = lock_instance(&mut tx, &instance_id).await?;
    let client = common::names::parse_client_id(&req.client_id, quotas.max_client_id_length as usize)
        .map_err(|e| ApiError::invalid("clientId", e))?;
    let group: Option<(i32,)> = sqlx::query_as("select 1 from group_ids where instance_id = $1 and group_id = $2")
        .bind(&instance_id)
        .bind(client.group_id)
        .fetch_optional(&mut *tx)
        .await?;
    if group.is_none() {
        return Err(ApiError::invalid(
            "clientId",
            "its group ID does not exist in the instance",
        ));
    }
    let key_id = crate::ids::device_key_id();
    let secret = crate::ids::device_secret();
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into device_credentials (instance_id, client_id, group_id, device_id, device_access_key_id, secret_enc)
         values ($1, $2, $3, $4, $5, $6) returning {RETURNING}"
    )))
    .bind(&instance_id)
    .bind(&req.client_id)
    .bind(client.group_id)
    .bind(client.device_id)
    .bind(&key_id)
    .bind(state.secrets.encrypt(Aad::Device(&key_id), secret.as_bytes()))
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        conflict(e, || {
            format!("client ID {:?} already has a device credential", req.client_id)
        })
    })?;
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into_api(&state)?)))
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/device-credentials/{clientId}", operation_id = "GetDeviceCredential",
    tag = "device-credentials", params(("instanceId" = String, Path), ("clientId" = String, Path)),
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = DeviceCredential), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_device_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, client_id)): Path<(String, String)>,
) -> ApiResult<Json<DeviceCredential>> {
    caller.require_instance(&instance_id)?;
    instance_quotas(&state.db, &instance_id).await?;
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {RETURNING} from device_credentials where instance_id = $1 and client_id = $2"
    )))
    .bind(&instance_id)
    .bind(&client_id)
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound("device credential"))?;
    Ok(Json(row.into_api(&state)?))
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/device-credentials/{clientId}/refresh",
    operation_id = "RefreshDeviceCredential", tag = "device-credentials",
    params(("instanceId" = String, Path), ("clientId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = DeviceCredential), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn refresh_device_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, client_id)): Path<(String, String)>,
) -> ApiResult<Json<DeviceCredential>> {
    caller.require_instance(&instance_id)?;
    let mut tx = state.db.begin().await?;
    lock_instance(&mut tx, &instance_id).await?;
    let key: Option<(String,)> =
        sqlx::query_as("select device_access_key_id from device_credentials where instance_id = $1 and client_id = $2")
            .bind(&instance_id)
            .bind(&client_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (key_id,) = key.ok_or(ApiError::NotFound("device credential"))?;
    let secret = crate::ids::device_secret();
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update device_credentials set secret_enc = $3, updated_at = now()
         where instance_id = $1 and client_id = $2 returning {RETURNING}"
    )))
    .bind(&instance_id)
    .bind(&client_id)
    .bind(state.secrets.encrypt(Aad::Device(&key_id), secret.as_bytes()))
    .fetch_one(&mut *tx)
    .await?;
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(row.into_api(&state)?))
}

#[utoipa::path(delete, path = "/api/v1/instances/{instanceId}/device-credentials/{clientId}",
    operation_id = "UnRegisterDeviceCredential", tag = "device-credentials",
    params(("instanceId" = String, Path), ("clientId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unregister_device_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, client_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_instance(&instance_id)?;
    let mut tx = state.db.begin().await?;
    lock_instance(&mut tx, &instance_id).await?;
    let deleted = sqlx::query("delete from device_credentials where instance_id = $1 and client_id = $2")
        .bind(&instance_id)
        .bind(&client_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound("device credential"));
    }
    bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/device-credentials", operation_id = "ListDeviceCredentialClientId",
    tag = "device-credentials", params(("instanceId" = String, Path), ListParams), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = ClientIdPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list_device_credential_client_id(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<Json<ClientIdPage>> {
    caller.require_instance(&instance_id)?;
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    instance_quotas(&state.db, &instance_id).await?;
    let group_id = params
        .group_id
        .ok_or_else(|| ApiError::invalid("groupId", "is required"))?;
    let page_no = params.page_no.unwrap_or(1);
    let page_size = params.page_size.unwrap_or(100);
    if page_no < 1 {
        return Err(ApiError::invalid("pageNo", "must be at least 1"));
    }
    if !(1..=100).contains(&page_size) {
        return Err(ApiError::invalid("pageSize", "must be 1 to 100"));
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select client_id, count(*) over () from device_credentials where instance_id = $1 and group_id = $2
         order by client_id limit $3 offset $4",
    )
    .bind(&instance_id)
    .bind(&group_id)
    .bind(i64::from(page_size))
    .bind(i64::from(page_no - 1) * i64::from(page_size))
    .fetch_all(&state.db)
    .await?;
    let total = match rows.first() {
        Some((_, t)) => *t,
        None => {
            sqlx::query_as::<_, (i64,)>(
                "select count(*) from device_credentials where instance_id = $1 and group_id = $2",
            )
            .bind(&instance_id)
            .bind(&group_id)
            .fetch_one(&state.db)
            .await?
            .0
        }
    };
    let client_ids = rows.into_iter().map(|(c, _)| c).collect();
    Ok(Json(ClientIdPage {
        client_ids,
        page_no,
        page_size,
        total,
    }))
}
