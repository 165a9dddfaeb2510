//! Instances: the tenants. Create/update/delete are operator-only; an AccessKey sees only the
//! instances it is bound to.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::quotas::Quotas;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::quotas::{QuotasPatch, QuotasView};
use crate::auth::Caller;
use crate::db::ConfigTx;
use crate::db::instances::{self, InstanceRow, InstanceUpdate, NewInstance};
use crate::db::usage;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInstanceRequest {
    /// 3-64 chars of `[A-Za-z0-9_-]`, unique (case-insensitive).
    #[schema(pattern = "^[A-Za-z0-9_-]{3,64}$")]
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

/// What the instance holds, and its traffic now against its quotas: the latest heartbeat figures of
/// every broker heard from within `broker_silent_secs`, summed (offline messages: the largest report,
/// the brokers of a cluster each reporting the cluster's shared store).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub parent_topics: i64,
    pub group_ids: i64,
    pub device_credentials: i64,
    pub access_keys: i64,
    /// Rules (against `quotas.maxRules`).
    pub rules: i64,
    /// Live connections (against `quotas.maxConnections`).
    pub connections: i64,
    /// Subscriptions of the instance's sessions.
    pub subscriptions: i64,
    /// Messages published by clients per second (against `quotas.maxMessagesPerSecond`).
    pub messages_in_per_sec: f64,
    /// Messages delivered to clients per second.
    pub messages_out_per_sec: f64,
    /// Offline messages stored (against `quotas.maxOfflineMessages`).
    pub offline_messages: i64,
    /// Brokers whose figures are counted (those with the instance's clients or messages).
    pub reporting_brokers: i64,
}

#[derive(Serialize, ToSchema)]
pub struct InstanceList {
    pub instances: Vec<Instance>,
}

impl Instance {
    fn new(row: InstanceRow, state: &AppState, usage: Option<Usage>) -> Self {
        Self {
            instance_id: row.id,
            name: row.name,
            description: row.description,
            quotas: QuotasView::from(&row.quotas),
            reject_duplicate_client_id: row.reject_duplicate_client_id,
            endpoints: state.config.mqtt_endpoints.clone(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            usage,
        }
    }
}

impl Usage {
    fn new(u: instances::Usage, t: usage::Totals) -> Self {
        Self {
            parent_topics: u.parent_topics,
            group_ids: u.group_ids,
            device_credentials: u.device_credentials,
            access_keys: u.access_keys,
            rules: u.rules,
            connections: t.connections,
            subscriptions: t.subscriptions,
            messages_in_per_sec: t.messages_in_per_sec,
            messages_out_per_sec: t.messages_out_per_sec,
            offline_messages: t.offline_messages,
            reporting_brokers: t.brokers,
        }
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    common::names::validate_instance_name(name).map_err(|e| ApiError::invalid("name", e))
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
    let id = crate::ids::instance_id();
    let mut tx = ConfigTx::begin(&state.db).await?;
    let new = NewInstance {
        id: &id,
        name: &req.name,
        description: &req.description,
        quotas: &quotas,
        reject_duplicate_client_id: req.reject_duplicate_client_id,
    };
    let row = instances::create(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(Instance::new(row, &state, None))))
}

#[utoipa::path(get, path = "/api/v1/instances", operation_id = "ListInstances", tag = "instances",
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = InstanceList), (status = 401, body = ErrorBody)))]
pub async fn list_instances(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<InstanceList>> {
    // An AccessKey lists only its bound instances; an operator (no key) lists all.
    let rows = instances::list(&state.db, caller.access_key_id()).await?;
    let instances = rows.into_iter().map(|r| Instance::new(r, &state, None)).collect();
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
    let row = instances::get(&state.db, &id)
        .await?
        .ok_or(ApiError::NotFound("instance"))?;
    let held = instances::usage(&state.db, &id).await?;
    let silent_after = Duration::from_secs(state.config.broker_silent_secs);
    let traffic = usage::totals(&state.db, &id, silent_after).await?;
    Ok(Json(Instance::new(row, &state, Some(Usage::new(held, traffic)))))
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
    let mut tx = ConfigTx::begin(&state.db).await?;
    let current = tx.lock_instance(&id).await?;
    let quotas = match &req.quotas {
        Some(patch) => {
            let quotas = patch.apply(current)?;
            check_holdings(
                &quotas,
                &instances::holdings(&mut tx, &id, crate::clock::now_ms()).await?,
            )?;
            quotas
        }
        None => current,
    };
    let update = InstanceUpdate {
        name: req.name.as_deref(),
        description: req.description.as_deref(),
        quotas: &quotas,
        reject_duplicate_client_id: req.reject_duplicate_client_id,
    };
    let row = instances::update(&mut tx, &id, &update).await?;
    tx.commit().await?;
    Ok(Json(Instance::new(row, &state, None)))
}

/// Refuses quotas below what the instance already holds (409 `QuotaBelowUsage` naming the quota):
/// such a configuration would strand what exists (parent topics over the limit, topics under a parent
/// longer than the limit, live tokens with more resources) or, for device credentials with longer
/// client IDs, make every broker refuse the whole snapshot.
fn check_holdings(q: &Quotas, h: &instances::Holdings) -> ApiResult<()> {
    // (quota, what the instance holds, the quota's field, why it is refused)
    let checks = [
        (
            i64::from(q.max_parent_topics),
            h.parent_topics,
            "maxParentTopics",
            format!("the instance has {} parent topics; delete some first", h.parent_topics),
        ),
        (
            i64::from(q.max_rules),
            h.rules,
            "maxRules",
            format!("the instance has {} rules; delete some first", h.rules),
        ),
        (
            i64::from(q.max_topic_length),
            i64::from(h.longest_parent_topic),
            "maxTopicLength",
            format!(
                "the instance has a parent topic of {} characters",
                h.longest_parent_topic
            ),
        ),
        (
            i64::from(q.max_client_id_length),
            i64::from(h.longest_device_client_id),
            "maxClientIdLength",
            format!(
                "the instance has a device credential whose client ID has {} characters; unregister it first",
                h.longest_device_client_id
            ),
        ),
        (
            i64::from(q.max_token_resources),
            i64::from(h.most_token_resources),
            "maxTokenResources",
            format!(
                "the instance has an unexpired token with {} resources; revoke it or wait until it expires",
                h.most_token_resources
            ),
        ),
        (
            i64::from(q.max_client_id_length),
            i64::from(h.longest_custom_client_id),
            "maxClientIdLength",
            format!(
                "the instance's custom authentication names a client ID of {} characters; remove it first",
                h.longest_custom_client_id
            ),
        ),
        (
            i64::from(q.max_topic_length),
            i64::from(h.longest_permission_topic),
            "maxTopicLength",
            format!(
                "the instance has a custom-auth permission on a topic of {} characters",
                h.longest_permission_topic
            ),
        ),
        (
            i64::from(q.max_connections),
            h.custom_identities,
            "maxConnections",
            format!(
                "the instance has {} custom-auth identities; delete some first",
                h.custom_identities
            ),
        ),
        (
            i64::from(q.max_connections),
            h.custom_entries,
            "maxConnections",
            format!(
                "the instance has {} custom-auth permissions and blacklist entries; delete some first",
                h.custom_entries
            ),
        ),
    ];
    match checks.into_iter().find(|(quota, held, _, _)| quota < held) {
        Some((_, _, field, message)) => Err(ApiError::QuotaBelowUsage {
            field: format!("quotas.{field}"),
            message,
        }),
        None => Ok(()),
    }
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
    let mut tx = ConfigTx::begin(&state.db).await?;
    if !instances::delete(&mut tx, &id).await? {
        return Err(ApiError::NotFound("instance"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
