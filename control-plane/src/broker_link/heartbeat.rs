//! `POST heartbeat`: a node's status, recorded per node for ListBrokers.

use axum::extract::State;
use axum::http::StatusCode;
use common::sync::Heartbeat;

use crate::auth::node::Node;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::state::AppState;

pub async fn heartbeat(
    State(state): State<AppState>,
    node: Node,
    ApiJson(hb): ApiJson<Heartbeat>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    super::observe_boot(&mut tx, &node.id, &hb.boot_id).await?;
    // Counters arrive as u64; PostgreSQL has no unsigned type and no broker holds 2^63 clients.
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sqlx::query(
        "update broker_nodes set software_version = $2, applied_version = $3, applied_hash = $4,
            last_error = $5, connections = $6, subscriptions = $7, messages_in_per_sec = $8,
            messages_out_per_sec = $9, started_at_ms = $10, last_heartbeat_at = now(), updated_at = now()
         where id = $1",
    )
    .bind(&node.id)
    .bind(&hb.software_version)
    .bind(hb.applied_version)
    .bind(&hb.applied_hash)
    .bind(&hb.last_error)
    .bind(clamp(hb.connections))
    .bind(clamp(hb.subscriptions))
    .bind(hb.messages_in_per_sec)
    .bind(hb.messages_out_per_sec)
    .bind(hb.started_at_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
