//! Online status and sessions *(compat: QuerySessionByClientId, BatchQuerySessionByClientIds,
//! CloseConnection)*, answered from the live channels brokers report (`client_channels`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::sync::Command;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Most client ids per BatchQuerySessionByClientIds *(compat)*.
pub const MAX_BATCH_CLIENT_IDS: usize = 10;

/// One live TCP connection of the client.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    /// 32 hex chars, unique per connection.
    pub channel_id: String,
    /// Broker node holding the connection.
    pub node_id: String,
    /// `ip:port`.
    pub client_ip: String,
    pub connected_at: DateTime<Utc>,
    /// Topic filters of this connection.
    pub subscriptions: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub client_id: String,
    /// Some connection is live.
    pub online: bool,
    /// Live connections (0 = offline).
    pub connections: usize,
    pub channels: Vec<Channel>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchQuerySessionRequest {
    /// 1-10 client ids.
    pub client_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionList {
    /// One per requested client id, in request order.
    pub sessions: Vec<Session>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandAccepted {
    /// Sequence number of the broadcast command brokers act on.
    pub command_seq: i64,
}

/// Sessions of `client_ids` in that order. Channels of silent nodes are left out: a broker that stopped
/// reporting is presumed gone with its connections (a restart with a new boot id drops them for good).
async fn sessions(state: &AppState, instance_id: &str, client_ids: &[String]) -> ApiResult<Vec<Session>> {
    let silent_after = Duration::from_secs(state.config.broker_silent_secs);
    let rows = db::sessions::live_channels(&state.db, instance_id, client_ids, silent_after).await?;
    let mut by_client: BTreeMap<String, Vec<Channel>> = BTreeMap::new();
    for row in rows {
        by_client.entry(row.client_id).or_default().push(Channel {
            channel_id: row.channel_id,
            node_id: row.node_id,
            client_ip: row.client_ip,
            connected_at: row.connected_at,
            subscriptions: row.subscriptions,
        });
    }
    Ok(client_ids
        .iter()
        .map(|id| {
            let channels = by_client.remove(id).unwrap_or_default();
            Session {
                client_id: id.clone(),
                online: !channels.is_empty(),
                connections: channels.len(),
                channels,
            }
        })
        .collect())
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/sessions/{clientId}", operation_id = "QuerySessionByClientId",
    tag = "sessions", params(("instanceId" = String, Path), ("clientId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = Session), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn query_session_by_client_id(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, client_id)): Path<(String, String)>,
) -> ApiResult<Json<Session>> {
    caller.require_instance(&instance_id)?;
    db::instances::quotas(&state.db, &instance_id).await?;
    let mut list = sessions(&state, &instance_id, std::slice::from_ref(&client_id)).await?;
    Ok(Json(list.remove(0)))
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/sessions/batch-query", operation_id = "BatchQuerySessionByClientIds",
    tag = "sessions", params(("instanceId" = String, Path)), request_body = BatchQuerySessionRequest,
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = SessionList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn batch_query_session_by_client_ids(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<BatchQuerySessionRequest>,
) -> ApiResult<Json<SessionList>> {
    caller.require_instance(&instance_id)?;
    if req.client_ids.is_empty() || req.client_ids.len() > MAX_BATCH_CLIENT_IDS {
        return Err(ApiError::invalid(
            "clientIds",
            format!("give 1 to {MAX_BATCH_CLIENT_IDS} client ids"),
        ));
    }
    db::instances::quotas(&state.db, &instance_id).await?;
    let sessions = sessions(&state, &instance_id, &req.client_ids).await?;
    Ok(Json(SessionList { sessions }))
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/sessions/{clientId}/close", operation_id = "CloseConnection",
    tag = "sessions", params(("instanceId" = String, Path), ("clientId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 202, body = CommandAccepted), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such instance, or the client is not online")))]
pub async fn close_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, client_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<CommandAccepted>)> {
    caller.require_instance(&instance_id)?;
    db::instances::quotas(&state.db, &instance_id).await?;
    let session = sessions(&state, &instance_id, std::slice::from_ref(&client_id)).await?;
    if !session[0].online {
        return Err(ApiError::NotFound("online client"));
    }
    // Broadcast: every broker closes the connections of this client it holds.
    let command = Command::CloseConnection { instance_id, client_id };
    let command_seq = db::commands::insert(&state.db, &command).await?;
    Ok((StatusCode::ACCEPTED, Json(CommandAccepted { command_seq })))
}
