//! `POST heartbeat`: a node's status, recorded per node for ListBrokers, and its per-instance figures
//! for GetInstance and GetInstanceUsageHistory.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use common::sync::Heartbeat;

use crate::auth::node::Node;
use crate::db;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::state::AppState;

pub async fn heartbeat(
    State(state): State<AppState>,
    node: Node,
    ApiJson(hb): ApiJson<Heartbeat>,
) -> ApiResult<StatusCode> {
    let silent_after = Duration::from_secs(state.config.broker_silent_secs);
    if !db::brokers::record_heartbeat(&state.db, &node.id, &hb, silent_after).await? {
        return Err(Node::unknown());
    }
    Ok(StatusCode::NO_CONTENT)
}
