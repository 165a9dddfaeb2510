//! `POST events`: client status events (docs/spec.md 3.8) and subscription changes. They keep
//! `client_channels` (the live connections behind QuerySessionByClientId) current, and
//! connect/disconnect/tcpclean are appended to `client_events` (the trace history).

use axum::extract::State;
use axum::http::StatusCode;
use common::sync::EventBatch;

use crate::auth::node::Node;
use crate::db;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::state::AppState;

pub async fn events(
    State(state): State<AppState>,
    node: Node,
    ApiJson(batch): ApiJson<EventBatch>,
) -> ApiResult<StatusCode> {
    if !db::sessions::record_events(&state.db, &node.id, &batch).await? {
        return Err(Node::unknown());
    }
    Ok(StatusCode::NO_CONTENT)
}
