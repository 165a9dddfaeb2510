//! Device credentials *(compat: RegisterDeviceCredential, GetDeviceCredential,
//! RefreshDeviceCredential, UnRegisterDeviceCredential, ListDeviceCredentialClientId)*: one
//! `DC.`-prefixed key pair per client ID, the secret stored encrypted.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::paging::Page;
use crate::auth::Caller;
use crate::crypto::Aad;
use crate::db::devices::{self, DeviceRow, NewDevice};
use crate::db::{ConfigTx, groups, instances};
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

impl DeviceCredential {
    pub(crate) fn open(row: DeviceRow, state: &AppState) -> ApiResult<Self> {
        let secret = state
            .secrets
            .decrypt_string(Aad::Device(&row.device_access_key_id), &row.secret_enc)
            .map_err(ApiError::Internal)?;
        Ok(Self {
            client_id: row.client_id,
            device_access_key_id: row.device_access_key_id,
            device_access_key_secret: secret,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

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
    let credential = register(&state, &caller, &instance_id, &req.client_id, Existing::Refuse).await?;
    Ok((StatusCode::CREATED, Json(credential)))
}

/// What registering a client ID that already has a credential does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// 409 `AlreadyExists` (the REST operation: a second registration is usually a mistake).
    Refuse,
    /// A new key pair replaces the old one *(compat: Alibaba's RegisterDeviceCredential action,
    /// where the credential returned last is the valid one)*.
    Replace,
}

/// A client ID to register, parsed: well-formed and at most the instance's `maxClientIdLength`.
pub(crate) fn parse_client_id(client_id: &str, max_len: u32) -> ApiResult<common::names::ClientId<'_>> {
    common::names::parse_client_id(client_id, max_len as usize).map_err(|e| ApiError::invalid("clientId", e))
}

/// The refusal of a client ID whose group the instance does not have.
pub(crate) fn no_such_group() -> ApiError {
    ApiError::invalid("clientId", "its group ID does not exist in the instance")
}

/// A new `DC.` secret, sealed under its key id for storage (the answer decrypts it from the row).
pub(crate) fn sealed_new_secret(state: &AppState, key_id: &str) -> Vec<u8> {
    state
        .secrets
        .encrypt(Aad::Device(key_id), crate::ids::device_secret().as_bytes())
}

/// Registers a credential for `client_id`: a new `DC.` key pair, the secret encrypted under its id.
pub(crate) async fn register(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
    client_id: &str,
    existing: Existing,
) -> ApiResult<DeviceCredential> {
    caller.require_instance(instance_id)?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    let quotas = tx.lock_instance_for_devices(instance_id).await?;
    let client = parse_client_id(client_id, quotas.max_client_id_length)?;
    if !groups::exists(&mut tx, instance_id, client.group_id).await? {
        return Err(no_such_group());
    }
    let key_id = crate::ids::device_key_id();
    let new = NewDevice {
        instance_id,
        client_id,
        group_id: client.group_id,
        device_id: client.device_id,
        device_access_key_id: &key_id,
        secret_enc: &sealed_new_secret(state, &key_id),
    };
    let row = devices::register(&mut tx, &new, existing == Existing::Replace).await?;
    tx.commit().await?;
    DeviceCredential::open(row, state)
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
    instances::quotas(&state.db, &instance_id).await?;
    let row = devices::get(&state.db, &instance_id, &client_id)
        .await?
        .ok_or(ApiError::NotFound("device credential"))?;
    Ok(Json(DeviceCredential::open(row, &state)?))
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
    let mut tx = ConfigTx::begin(&state.db).await?;
    tx.lock_instance_for_devices(&instance_id).await?;
    let key_id = devices::key_id(&mut tx, &instance_id, &client_id)
        .await?
        .ok_or(ApiError::NotFound("device credential"))?;
    let secret_enc = sealed_new_secret(&state, &key_id);
    let row = devices::set_secret(&mut tx, &instance_id, &client_id, &secret_enc).await?;
    tx.commit().await?;
    Ok(Json(DeviceCredential::open(row, &state)?))
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
    let mut tx = ConfigTx::begin(&state.db).await?;
    tx.lock_instance_for_devices(&instance_id).await?;
    if !devices::delete(&mut tx, &instance_id, &client_id).await? {
        return Err(ApiError::NotFound("device credential"));
    }
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
    instances::quotas(&state.db, &instance_id).await?;
    let group_id = params
        .group_id
        .ok_or_else(|| ApiError::invalid("groupId", "is required"))?;
    let page = Page::new(params.page_no, params.page_size, 100)?;
    let ids = devices::client_ids(&state.db, &instance_id, &group_id, page.limit(), page.offset()).await?;
    Ok(Json(ClientIdPage {
        client_ids: ids.client_ids,
        page_no: page.no,
        page_size: page.size,
        total: ids.total,
    }))
}
