//! Custom authentication *(compat: Add/Update/Delete/QueryCustomAuthIdentity, ...Permission,
//! Add/Delete/QueryCustomAuthConnectBlack)*: identities that connect with their own username and
//! secret, their topic permissions, and the connect blacklist (docs/custom-auth.md). Identities, and
//! permissions plus blacklist entries, are each bounded by the instance's connection quota.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::custom_auth::{self as names, Effect, IdentityType, PermitAction, SignMode};
use common::quotas::Quotas;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::paging::TokenPage;
use crate::auth::Caller;
use crate::crypto::Aad;
use crate::db::custom_auth::{self as db, Filter, IdentityRow, NewIdentity, PermissionRow};
use crate::db::{ConfigTx, instances};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddCustomAuthIdentityRequest {
    /// 1-64 printable ASCII characters without spaces or `|`, unique across the whole service (it
    /// tells the broker which instance the client connects to).
    #[schema(pattern = "^[!-{}~]{1,64}$")]
    pub username: String,
    /// Write-only: 1-256 bytes without control characters.
    #[schema(min_length = 1, max_length = 256)]
    pub secret: String,
    pub identity_type: IdentityType,
    /// Required for a CLIENT identity (the one client ID it may connect as), refused for USER.
    pub client_id: Option<String>,
    pub sign_mode: SignMode,
}

impl AddCustomAuthIdentityRequest {
    /// The username and the rest (spelled out rather than `#[serde(flatten)]`, which the OpenAPI
    /// document would render as two closed schemas that no body can satisfy together).
    fn split(self) -> (String, CustomAuthIdentitySettings) {
        let settings = CustomAuthIdentitySettings {
            secret: self.secret,
            identity_type: self.identity_type,
            client_id: self.client_id,
            sign_mode: self.sign_mode,
        };
        (self.username, settings)
    }
}

/// What an identity is besides its username (all of it replaced by an update).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomAuthIdentitySettings {
    /// Write-only: 1-256 bytes without control characters.
    #[schema(min_length = 1, max_length = 256)]
    pub secret: String,
    pub identity_type: IdentityType,
    /// Required for a CLIENT identity (the one client ID it may connect as), refused for USER.
    pub client_id: Option<String>,
    pub sign_mode: SignMode,
}

/// An identity as answers show it: never its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomAuthIdentity {
    pub username: String,
    pub identity_type: IdentityType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub sign_mode: SignMode,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomAuthIdentityPage {
    pub identities: Vec<CustomAuthIdentity>,
    /// Present while there are more: pass it as `nextToken` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct IdentityQuery {
    pub username: Option<String>,
    pub client_id: Option<String>,
    /// USER or CLIENT.
    pub identity_type: Option<String>,
    /// From the previous page's answer.
    pub next_token: Option<String>,
    /// 1-100 [default 100].
    pub size: Option<u32>,
}

/// A permission: who (a username for USER, a client ID for CLIENT), which topics (an MQTT filter
/// under a parent topic), what and whether. A DENY that matches wins over every ALLOW; a client
/// with no matching permission may do nothing.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomAuthPermission {
    pub identity_type: IdentityType,
    pub identity: String,
    pub topic: String,
    pub permit_action: PermitAction,
    pub effect: Effect,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomAuthPermissionPage {
    pub permissions: Vec<CustomAuthPermission>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PermissionQuery {
    pub identity: Option<String>,
    /// USER or CLIENT.
    pub identity_type: Option<String>,
    pub topic: Option<String>,
    pub next_token: Option<String>,
    /// 1-100 [default 100].
    pub size: Option<u32>,
}

/// Which permission DeleteCustomAuthPermission removes.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PermissionKey {
    /// USER or CLIENT (required).
    pub identity_type: Option<String>,
    /// Required.
    pub identity: Option<String>,
    /// Required.
    pub topic: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddConnectBlacklistRequest {
    pub client_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectBlacklistEntry {
    pub client_id: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectBlacklistPage {
    pub entries: Vec<ConnectBlacklistEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct BlacklistQuery {
    pub client_id: Option<String>,
    pub next_token: Option<String>,
    /// 1-100 [default 100].
    pub size: Option<u32>,
}

fn parse_type(value: Option<&str>, field: &str) -> ApiResult<Option<IdentityType>> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().map_err(|e| ApiError::invalid(field, e)))
        .transpose()
}

impl From<IdentityRow> for CustomAuthIdentity {
    fn from(row: IdentityRow) -> Self {
        Self {
            identity_type: row.identity_type,
            sign_mode: row.sign_mode,
            username: row.username,
            client_id: row.client_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Checks an identity's settings against the instance's limits.
fn check_settings(s: &CustomAuthIdentitySettings, quotas: &Quotas) -> ApiResult<()> {
    names::validate_secret(&s.secret).map_err(|e| ApiError::invalid("secret", e))?;
    match (s.identity_type, &s.client_id) {
        (IdentityType::Client, Some(c)) => names::validate_client_id(c, quotas.max_client_id_length as usize)
            .map_err(|e| ApiError::invalid("clientId", e)),
        (IdentityType::Client, None) => Err(ApiError::invalid("clientId", "is required for a CLIENT identity")),
        (IdentityType::User, Some(_)) => Err(ApiError::invalid("clientId", "only a CLIENT identity has one")),
        (IdentityType::User, None) => Ok(()),
    }
}

fn full(what: &str, quotas: &Quotas) -> ApiError {
    ApiError::QuotaExceeded(format!(
        "the instance holds as many {what} as its connection quota ({}) allows",
        quotas.max_connections
    ))
}

/// Writes an identity (new, or replacing an existing one's settings), the secret sealed under the
/// username.
pub(crate) async fn put_identity(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
    username: &str,
    settings: &CustomAuthIdentitySettings,
    update: bool,
) -> ApiResult<CustomAuthIdentity> {
    caller.require_instance(instance_id)?;
    names::validate_username(username).map_err(|e| ApiError::invalid("username", e))?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    let quotas = tx.lock_instance(instance_id).await?;
    check_settings(settings, &quotas)?;
    let secret_enc = state
        .secrets
        .encrypt(Aad::CustomIdentity(username), settings.secret.as_bytes());
    let new = NewIdentity {
        username,
        identity_type: settings.identity_type,
        client_id: settings.client_id.as_deref(),
        sign_mode: settings.sign_mode,
        secret_enc: &secret_enc,
    };
    let row = if update {
        db::update_identity(&mut tx, instance_id, &new)
            .await?
            .ok_or(ApiError::NotFound("custom identity"))?
    } else {
        let (identities, _) = db::counts(&mut tx, instance_id).await?;
        if identities >= i64::from(quotas.max_connections) {
            return Err(full("custom identities", &quotas));
        }
        db::add_identity(&mut tx, instance_id, &new).await?
    };
    tx.commit().await?;
    Ok(row.into())
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/custom-auth/identities", operation_id = "AddCustomAuthIdentity",
    tag = "custom-auth", params(("instanceId" = String, Path)), request_body = AddCustomAuthIdentityRequest,
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 201, body = CustomAuthIdentity), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_custom_auth_identity(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<AddCustomAuthIdentityRequest>,
) -> ApiResult<(StatusCode, Json<CustomAuthIdentity>)> {
    let (username, settings) = req.split();
    let identity = put_identity(&state, &caller, &instance_id, &username, &settings, false).await?;
    Ok((StatusCode::CREATED, Json(identity)))
}

#[utoipa::path(put, path = "/api/v1/instances/{instanceId}/custom-auth/identities/{username}",
    operation_id = "UpdateCustomAuthIdentity", tag = "custom-auth",
    params(("instanceId" = String, Path), ("username" = String, Path)), request_body = CustomAuthIdentitySettings,
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = CustomAuthIdentity), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn update_custom_auth_identity(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, username)): Path<(String, String)>,
    ApiJson(settings): ApiJson<CustomAuthIdentitySettings>,
) -> ApiResult<Json<CustomAuthIdentity>> {
    let identity = put_identity(&state, &caller, &instance_id, &username, &settings, true).await?;
    Ok(Json(identity))
}

#[utoipa::path(delete, path = "/api/v1/instances/{instanceId}/custom-auth/identities/{username}",
    operation_id = "DeleteCustomAuthIdentity", tag = "custom-auth",
    params(("instanceId" = String, Path), ("username" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_custom_auth_identity(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_instance(&instance_id)?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    tx.lock_instance(&instance_id).await?;
    if !db::delete_identity(&mut tx, &instance_id, &username).await? {
        return Err(ApiError::NotFound("custom identity"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/custom-auth/identities", operation_id = "QueryCustomAuthIdentity",
    tag = "custom-auth", params(("instanceId" = String, Path), IdentityQuery), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = CustomAuthIdentityPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn query_custom_auth_identity(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    params: Result<Query<IdentityQuery>, QueryRejection>,
) -> ApiResult<Json<CustomAuthIdentityPage>> {
    caller.require_instance(&instance_id)?;
    let Query(q) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    instances::quotas(&state.db, &instance_id).await?;
    let page = TokenPage::new(q.next_token.as_deref(), q.size)?;
    let identity_type = parse_type(q.identity_type.as_deref(), "identityType")?;
    let filter = Filter {
        identity_type: identity_type.map(IdentityType::as_str),
        name: q.username.as_deref().filter(|u| !u.is_empty()),
        client_id: q.client_id.as_deref().filter(|c| !c.is_empty()),
        topic: None,
    };
    let rows = db::identities(&state.db, &instance_id, &filter, page.limit(), page.offset()).await?;
    let (rows, next_token) = page.split(rows);
    Ok(Json(CustomAuthIdentityPage {
        identities: rows.into_iter().map(CustomAuthIdentity::from).collect(),
        next_token,
    }))
}

/// Checks a permission against the instance's names: a username or client ID as identity, a topic
/// filter under one of the instance's limits.
fn permission_row(instance_id: &str, p: &CustomAuthPermission, quotas: &Quotas) -> ApiResult<PermissionRow> {
    match p.identity_type {
        IdentityType::User => names::validate_username(&p.identity),
        IdentityType::Client => names::validate_client_id(&p.identity, quotas.max_client_id_length as usize),
    }
    .map_err(|e| ApiError::invalid("identity", e))?;
    names::validate_permission_topic(&p.topic, quotas.max_topic_length as usize)
        .map_err(|e| ApiError::invalid("topic", e))?;
    Ok(PermissionRow {
        instance_id: instance_id.to_string(),
        identity_type: p.identity_type,
        identity: p.identity.clone(),
        topic: p.topic.clone(),
        permit_action: p.permit_action,
        effect: p.effect,
    })
}

/// Adds a permission (409 when one exists for the identity and topic) or, with `update`, changes
/// an existing one's action and effect (404 when there is none).
pub(crate) async fn put_permission(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
    permission: &CustomAuthPermission,
    update: bool,
) -> ApiResult<()> {
    caller.require_instance(instance_id)?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    let quotas = tx.lock_instance(instance_id).await?;
    let row = permission_row(instance_id, permission, &quotas)?;
    if !update {
        let (_, entries) = db::counts(&mut tx, instance_id).await?;
        if entries >= i64::from(quotas.max_connections) {
            return Err(full("permissions and blacklist entries", &quotas));
        }
    }
    if !db::put_permission(&mut tx, &row, update).await? {
        return Err(if update {
            ApiError::NotFound("custom permission")
        } else {
            ApiError::AlreadyExists(format!(
                "{} {:?} already has a permission on {:?}",
                row.identity_type, row.identity, row.topic
            ))
        });
    }
    tx.commit().await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/custom-auth/permissions",
    operation_id = "AddCustomAuthPermission", tag = "custom-auth", params(("instanceId" = String, Path)),
    request_body = CustomAuthPermission, security(("bearer" = []), ("acs3" = [])),
    responses((status = 201, body = CustomAuthPermission), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_custom_auth_permission(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(permission): ApiJson<CustomAuthPermission>,
) -> ApiResult<(StatusCode, Json<CustomAuthPermission>)> {
    put_permission(&state, &caller, &instance_id, &permission, false).await?;
    Ok((StatusCode::CREATED, Json(permission)))
}

#[utoipa::path(put, path = "/api/v1/instances/{instanceId}/custom-auth/permissions",
    operation_id = "UpdateCustomAuthPermission", tag = "custom-auth", params(("instanceId" = String, Path)),
    request_body = CustomAuthPermission, security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = CustomAuthPermission), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn update_custom_auth_permission(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(permission): ApiJson<CustomAuthPermission>,
) -> ApiResult<Json<CustomAuthPermission>> {
    put_permission(&state, &caller, &instance_id, &permission, true).await?;
    Ok(Json(permission))
}

/// Removes the permission of `identity` (of `identity_type`) on `topic`.
pub(crate) async fn remove_permission(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
    identity_type: IdentityType,
    identity: &str,
    topic: &str,
) -> ApiResult<()> {
    caller.require_instance(instance_id)?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    tx.lock_instance(instance_id).await?;
    if !db::delete_permission(&mut tx, instance_id, identity_type.as_str(), identity, topic).await? {
        return Err(ApiError::NotFound("custom permission"));
    }
    tx.commit().await?;
    Ok(())
}

#[utoipa::path(delete, path = "/api/v1/instances/{instanceId}/custom-auth/permissions",
    operation_id = "DeleteCustomAuthPermission", tag = "custom-auth", params(("instanceId" = String, Path), PermissionKey),
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_custom_auth_permission(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    params: Result<Query<PermissionKey>, QueryRejection>,
) -> ApiResult<StatusCode> {
    caller.require_instance(&instance_id)?;
    let Query(key) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let required = |v: Option<String>, field: &str| {
        v.filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::invalid(field, "is required"))
    };
    let identity_type = parse_type(key.identity_type.as_deref(), "identityType")?
        .ok_or_else(|| ApiError::invalid("identityType", "is required"))?;
    let identity = required(key.identity, "identity")?;
    let topic = required(key.topic, "topic")?;
    remove_permission(&state, &caller, &instance_id, identity_type, &identity, &topic).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/custom-auth/permissions",
    operation_id = "QueryCustomAuthPermission", tag = "custom-auth", params(("instanceId" = String, Path), PermissionQuery),
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = CustomAuthPermissionPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn query_custom_auth_permission(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    params: Result<Query<PermissionQuery>, QueryRejection>,
) -> ApiResult<Json<CustomAuthPermissionPage>> {
    caller.require_instance(&instance_id)?;
    let Query(q) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    instances::quotas(&state.db, &instance_id).await?;
    let page = TokenPage::new(q.next_token.as_deref(), q.size)?;
    let identity_type = parse_type(q.identity_type.as_deref(), "identityType")?;
    let filter = Filter {
        identity_type: identity_type.map(IdentityType::as_str),
        name: q.identity.as_deref().filter(|i| !i.is_empty()),
        client_id: None,
        topic: q.topic.as_deref().filter(|t| !t.is_empty()),
    };
    let rows = db::permissions(&state.db, &instance_id, &filter, page.limit(), page.offset()).await?;
    let (rows, next_token) = page.split(rows);
    let permissions = rows
        .into_iter()
        .map(|r| CustomAuthPermission {
            identity_type: r.identity_type,
            permit_action: r.permit_action,
            effect: r.effect,
            identity: r.identity,
            topic: r.topic,
        })
        .collect();
    Ok(Json(CustomAuthPermissionPage {
        permissions,
        next_token,
    }))
}

/// Puts a client ID on the instance's connect blacklist (409 when it is there already).
pub(crate) async fn add_blacklisted(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
    client_id: &str,
) -> ApiResult<()> {
    caller.require_instance(instance_id)?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    let quotas = tx.lock_instance(instance_id).await?;
    names::validate_client_id(client_id, quotas.max_client_id_length as usize)
        .map_err(|e| ApiError::invalid("clientId", e))?;
    let (_, entries) = db::counts(&mut tx, instance_id).await?;
    if entries >= i64::from(quotas.max_connections) {
        return Err(full("permissions and blacklist entries", &quotas));
    }
    if !db::add_blacklisted(&mut tx, instance_id, client_id).await? {
        return Err(ApiError::AlreadyExists(format!(
            "client ID {client_id:?} is on the blacklist already"
        )));
    }
    tx.commit().await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/custom-auth/connect-blacklist",
    operation_id = "AddCustomAuthConnectBlack", tag = "custom-auth", params(("instanceId" = String, Path)),
    request_body = AddConnectBlacklistRequest, security(("bearer" = []), ("acs3" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_custom_auth_connect_black(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<AddConnectBlacklistRequest>,
) -> ApiResult<StatusCode> {
    add_blacklisted(&state, &caller, &instance_id, &req.client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/instances/{instanceId}/custom-auth/connect-blacklist/{clientId}",
    operation_id = "DeleteCustomAuthConnectBlack", tag = "custom-auth",
    params(("instanceId" = String, Path), ("clientId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_custom_auth_connect_black(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, client_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_instance(&instance_id)?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    tx.lock_instance(&instance_id).await?;
    if !db::delete_blacklisted(&mut tx, &instance_id, &client_id).await? {
        return Err(ApiError::NotFound("blacklisted client ID"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/custom-auth/connect-blacklist",
    operation_id = "QueryCustomAuthConnectBlack", tag = "custom-auth", params(("instanceId" = String, Path), BlacklistQuery),
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = ConnectBlacklistPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn query_custom_auth_connect_black(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    params: Result<Query<BlacklistQuery>, QueryRejection>,
) -> ApiResult<Json<ConnectBlacklistPage>> {
    caller.require_instance(&instance_id)?;
    let Query(q) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    instances::quotas(&state.db, &instance_id).await?;
    let page = TokenPage::new(q.next_token.as_deref(), q.size)?;
    let client_id = q.client_id.as_deref().filter(|c| !c.is_empty());
    let rows = db::blacklist(&state.db, &instance_id, client_id, page.limit(), page.offset()).await?;
    let (rows, next_token) = page.split(rows);
    Ok(Json(ConnectBlacklistPage {
        entries: rows
            .into_iter()
            .map(|r| ConnectBlacklistEntry {
                client_id: r.client_id,
                created_at: r.created_at,
            })
            .collect(),
        next_token,
    }))
}
