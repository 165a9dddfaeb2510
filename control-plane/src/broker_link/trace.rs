//! `POST trace-answers`: a broker's answer to a message-trace query, kept for the request that waits.

use axum::extract::State;
use axum::http::StatusCode;
use common::sync::TraceAnswer;

use crate::auth::node::Node;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Records a query asks a broker for at most (the answer stays within the body limit).
pub const MAX_RECORDS: u32 = 10_000;
/// 10,000 records of at most a few hundred bytes each.
pub const BODY_LIMIT: usize = 8 << 20;

pub async fn trace_answers(
    State(state): State<AppState>,
    node: Node,
    ApiJson(answer): ApiJson<TraceAnswer>,
) -> ApiResult<StatusCode> {
    if answer.node_id != node.id {
        tracing::warn!(
            node = node.id,
            claimed = answer.node_id,
            "trace answer refused: another node's"
        );
        return Err(ApiError::invalid("nodeId", "is not the node the credentials belong to"));
    }
    if answer.records.len() > MAX_RECORDS as usize {
        return Err(ApiError::invalid("records", format!("at most {MAX_RECORDS}")));
    }
    if !db::trace_queries::finish(&state.db, &node.id, &answer).await? {
        // Late (purged), answered twice, or not asked of this node: nobody waits for it.
        tracing::info!(node = node.id, request = answer.request_id, "trace answer ignored");
    }
    Ok(StatusCode::NO_CONTENT)
}
