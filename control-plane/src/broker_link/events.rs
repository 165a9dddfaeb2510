//! `POST events`: client status events (docs/spec.md 3.8) and subscription changes. They keep
//! `client_channels` (the live connections behind QuerySessionByClientId) current, and
//! connect/disconnect/tcpclean are appended to `client_events` (the trace history).
//!
//! A batch with an event the database cannot take (a NUL anywhere, refused by `ApiJson`; a field
//! over `MAX_FIELD_BYTES`; more than `MAX_TOPICS` topics; a time outside year 1970-9999) answers 400
//! naming the event, and nothing of it is applied: brokers split a refused batch and drop only the
//! offending events (docs/sync-protocol.md).

use axum::extract::State;
use axum::http::StatusCode;
use common::sync::{ClientEvent, EventBatch};

use crate::auth::node::Node;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Longest client ID, channel ID, client address, instance ID, boot ID or topic filter accepted, in
/// bytes of UTF-8. Client IDs and topics are at most 1024 characters under any instance quota (their
/// upper bounds), and (instance ID, client ID) stays well inside a PostgreSQL index entry (2704 bytes).
pub(crate) const MAX_FIELD_BYTES: usize = 1024;
/// Most topic filters in one subscribe / unsubscribe event.
pub(crate) const MAX_TOPICS: usize = 1024;
/// Latest event time accepted (9999-12-31T23:59:59.999Z): PostgreSQL timestamps end there or later.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

pub async fn events(
    State(state): State<AppState>,
    node: Node,
    ApiJson(batch): ApiJson<EventBatch>,
) -> ApiResult<StatusCode> {
    check_batch(&batch)?;
    if !db::sessions::record_events(&state.db, &node.id, &batch).await? {
        return Err(Node::unknown());
    }
    Ok(StatusCode::NO_CONTENT)
}

fn check_batch(batch: &EventBatch) -> ApiResult<()> {
    check_len("bootId", &batch.boot_id)?;
    for (i, e) in batch.events.iter().enumerate() {
        check_event(e).map_err(|(field, message)| ApiError::invalid(format!("events[{i}].{field}"), message))?;
    }
    Ok(())
}

fn check_len(field: &str, value: &str) -> ApiResult<()> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(ApiError::invalid(field, format!("longer than {MAX_FIELD_BYTES} bytes")));
    }
    Ok(())
}

fn check_event(e: &ClientEvent) -> Result<(), (&'static str, String)> {
    let too_long = || format!("longer than {MAX_FIELD_BYTES} bytes");
    for (field, value) in [
        ("instanceId", &e.instance_id),
        ("clientId", &e.client_id),
        ("channelId", &e.channel_id),
        ("clientIp", &e.client_ip),
    ] {
        if value.len() > MAX_FIELD_BYTES {
            return Err((field, too_long()));
        }
    }
    if e.topics.len() > MAX_TOPICS {
        return Err(("topics", format!("more than {MAX_TOPICS} topics")));
    }
    if e.topics.iter().any(|t| t.len() > MAX_FIELD_BYTES) {
        return Err(("topics", too_long()));
    }
    if !(0..=MAX_TIME_MS).contains(&e.time) {
        return Err(("time", "must be epoch milliseconds between 1970 and 9999".into()));
    }
    Ok(())
}
