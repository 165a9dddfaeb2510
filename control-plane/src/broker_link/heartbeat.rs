//! `POST heartbeat`: a node's status, recorded per node for ListBrokers, and its per-instance figures
//! for GetInstance and GetInstanceUsageHistory.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use common::config_digest;
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
    check_digest(&state, &node.id, &hb).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Compares the broker's configuration digest with the control plane's when both are of the same
/// version; a broker that differs gets the full snapshot with its next poll.
async fn check_digest(state: &AppState, node_id: &str, hb: &Heartbeat) -> ApiResult<()> {
    let (Some(reported), Some((version, ours))) = (&hb.config_digest, state.snapshots.built_digest()) else {
        return Ok(());
    };
    if version != hb.applied_version || *reported == config_digest::to_hex(ours) {
        return Ok(());
    }
    crate::metrics::config_digest_mismatch();
    tracing::warn!(
        node = node_id,
        version,
        "broker configuration digest differs from the control plane's; sending it the full snapshot"
    );
    db::brokers::set_full_snapshot_due(&state.db, node_id, true).await?;
    Ok(())
}
