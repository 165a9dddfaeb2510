//! `POST events`: client status events (docs/spec.md 3.8) and subscription changes. They keep
//! `client_channels` (the live connections behind QuerySessionByClientId) current, and
//! connect/disconnect/tcpclean are appended to `client_events` (the trace history).

use axum::extract::State;
use axum::http::StatusCode;
use common::sync::{ClientEvent, EventBatch};

use crate::auth::node::Node;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Longest instance ID, client ID, channel ID or client address an event may carry, in bytes. They
/// are indexed, and PostgreSQL cannot index much longer values; MQTT allows client IDs of 64 KiB.
const MAX_ID_BYTES: usize = 1024;

/// The first field of the event that is longer than this side keeps.
fn oversized(e: &ClientEvent) -> Option<&'static str> {
    [
        ("instanceId", &e.instance_id),
        ("clientId", &e.client_id),
        ("channelId", &e.channel_id),
        ("clientIp", &e.client_ip),
    ]
    .into_iter()
    .find_map(|(name, value)| (value.len() > MAX_ID_BYTES).then_some(name))
}

/// A batch with an event the control plane cannot keep is refused with 400 (the broker then
/// splits it and drops only that event), never a 500 the broker would retry forever.
pub async fn events(
    State(state): State<AppState>,
    node: Node,
    ApiJson(batch): ApiJson<EventBatch>,
) -> ApiResult<StatusCode> {
    for (i, e) in batch.events.iter().enumerate() {
        if let Some(field) = oversized(e) {
            return Err(ApiError::invalid(
                format!("events[{i}].{field}"),
                format_args!("longer than {MAX_ID_BYTES} bytes"),
            ));
        }
    }
    if !db::sessions::record_events(&state.db, &node.id, &batch).await? {
        return Err(Node::unknown());
    }
    Ok(StatusCode::NO_CONTENT)
}
