//! Broker nodes (operator-only): per-node credentials for the broker-sync endpoints
//! (CreateBrokerNode shows the secret once), and ListBrokers, the health view built from heartbeats.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::auth::node::{hash_secret, valid_node_id};
use crate::db::{self, brokers::BrokerRow};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBrokerNodeRequest {
    /// 1-64 chars of `[A-Za-z0-9_.-]`; generated (`node-...`) when absent.
    pub node_id: Option<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedBrokerNode {
    pub node_id: String,
    /// Shown only here: the broker sends `Authorization: Node <nodeId>:<nodeSecret>`.
    pub node_secret: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// `in_sync`: applied the current version; `lagging`: an older one; `silent`: no heartbeat for
/// `broker_silent_secs` (10 s); `never_seen`: no heartbeat yet.
#[derive(Serialize, ToSchema, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BrokerState {
    InSync,
    Lagging,
    Silent,
    #[default]
    NeverSeen,
}

/// A clustered broker's link to NATS at its last heartbeat.
#[derive(Serialize, ToSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClusterLink {
    Up,
    Down,
}

// Read from `broker_nodes` as it is (`db::brokers::list`) but for `state` and `cluster_link`, which
// `BrokerNode::new` derives (a plain comment: doc comments go into the OpenAPI document).
#[derive(Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct BrokerNode {
    #[sqlx(rename = "id")]
    pub node_id: String,
    pub description: String,
    #[sqlx(skip)]
    pub state: BrokerState,
    /// Changes when the broker restarts.
    pub boot_id: Option<String>,
    pub software_version: Option<String>,
    pub applied_version: Option<i64>,
    pub applied_hash: Option<String>,
    /// Why the broker refused or could not fetch the last snapshot.
    pub last_error: Option<String>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Broker process start, epoch ms.
    pub started_at_ms: Option<i64>,
    pub connections: Option<i64>,
    pub subscriptions: Option<i64>,
    pub messages_in_per_sec: Option<f64>,
    pub messages_out_per_sec: Option<f64>,
    /// In a cluster: `up` when the broker's link to NATS was up at its last heartbeat, `down` when it
    /// was not (the broker then serves its own clients only); absent for a broker that runs alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(skip)]
    pub cluster_link: Option<ClusterLink>,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerList {
    /// The configuration version brokers should have applied.
    pub current_version: i64,
    pub brokers: Vec<BrokerNode>,
}

impl BrokerNode {
    fn new(row: BrokerRow, current_version: i64) -> Self {
        let node = row.node;
        let state = match (node.last_heartbeat_at, row.silent, node.applied_version) {
            (None, _, _) => BrokerState::NeverSeen,
            (_, true, _) => BrokerState::Silent,
            (_, false, Some(v)) if v == current_version => BrokerState::InSync,
            _ => BrokerState::Lagging,
        };
        Self {
            state,
            cluster_link: row
                .cluster_link
                .map(|up| if up { ClusterLink::Up } else { ClusterLink::Down }),
            ..node
        }
    }
}

#[utoipa::path(post, path = "/api/v1/brokers", operation_id = "CreateBrokerNode", tag = "brokers",
    request_body = CreateBrokerNodeRequest, security(("bearer" = [])),
    responses((status = 201, body = CreatedBrokerNode), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn create_broker_node(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateBrokerNodeRequest>,
) -> ApiResult<(StatusCode, Json<CreatedBrokerNode>)> {
    caller.require_operator()?;
    let node_id = req
        .node_id
        .unwrap_or_else(|| format!("node-{}", crate::ids::token_id()[..12].to_owned()));
    if !valid_node_id(&node_id) {
        return Err(ApiError::invalid("nodeId", "must be 1-64 chars of [A-Za-z0-9_.-]"));
    }
    let secret = crate::ids::node_secret();
    let created_at = db::brokers::create(&state.db, &node_id, &hash_secret(&secret), &req.description).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedBrokerNode {
            node_id,
            node_secret: secret,
            description: req.description,
            created_at,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/brokers", operation_id = "ListBrokers", tag = "brokers",
    security(("bearer" = [])),
    responses((status = 200, body = BrokerList), (status = 403, body = ErrorBody)))]
pub async fn list_brokers(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<BrokerList>> {
    caller.require_operator()?;
    let current_version = db::config_version(&state.db).await?;
    let silent_after = Duration::from_secs(state.config.broker_silent_secs);
    let brokers = db::brokers::list(&state.db, silent_after)
        .await?
        .into_iter()
        .map(|row| BrokerNode::new(row, current_version))
        .collect();
    Ok(Json(BrokerList {
        current_version,
        brokers,
    }))
}

#[utoipa::path(delete, path = "/api/v1/brokers/{nodeId}", operation_id = "DeleteBrokerNode", tag = "brokers",
    params(("nodeId" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_broker_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(node_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_operator()?;
    // Its credential stops working at once; its reported channels go with it (cascade).
    if !db::brokers::delete(&state.db, &node_id).await? {
        return Err(ApiError::NotFound("broker node"));
    }
    Ok(StatusCode::NO_CONTENT)
}
