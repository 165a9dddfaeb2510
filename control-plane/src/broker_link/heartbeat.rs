//! `POST heartbeat`: a node's status, recorded per node for ListBrokers.

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
    if !db::brokers::record_heartbeat(&state.db, &node.id, &hb).await? {
        return Err(Node::unknown());
    }
    Ok(StatusCode::NO_CONTENT)
}
