//! Message trace *(docs/trace.md; compat: QueryMqttTraceMessagePublish, QueryMqttTraceMessageSubscribe,
//! QueryMqttTraceMessageOfClient)*: who published a message ID and to whom it was pushed, live or
//! from offline messages, or everything one client published and received. Brokers keep the
//! records; a query asks every live broker (a broadcast command) and merges their answers, so it
//! covers the whole cluster.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use common::sync::{Command, TraceAction, TraceKind, TraceQuery, TraceRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::paging::Page;
use crate::auth::Caller;
use crate::broker_link::feeds::Wake;
use crate::broker_link::trace::MAX_RECORDS;
use crate::db::{self, instances};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// How far back traces reach: as long as brokers keep them.
const RETENTION_MS: i64 = common::sync::TRACE_RETENTION_HOURS * 3_600_000;

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct MessageTraceParams {
    /// The message (32 hex characters, as SendMessage answers). This or `clientId` is required.
    pub msg_id: Option<String>,
    /// The publisher or receiver.
    pub client_id: Option<String>,
    /// `publish` (pub_mqtt, pub_mq) or `delivery` (sub, push_offline); both when absent.
    pub kind: Option<String>,
    /// Epoch ms, inclusive [default: 3 days ago].
    pub begin_time: Option<i64>,
    /// Epoch ms, exclusive [default: now].
    pub end_time: Option<i64>,
    /// 1-based [default 1].
    pub page_no: Option<u32>,
    /// 1-100 [default 20].
    pub page_size: Option<u32>,
    /// Newest first [default false: oldest first].
    pub reverse: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageTraceRecord {
    /// Epoch ms.
    pub time: i64,
    pub msg_id: String,
    /// The publisher (empty for a message from the backend) or the receiver.
    pub client_id: String,
    /// `pub_mqtt` (published by an MQTT client), `pub_mq` (by the backend: SendMessage),
    /// `sub` (pushed to a connected subscriber), `push_offline` (pushed from offline messages).
    #[schema(value_type = String)]
    pub action: TraceAction,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageTracePage {
    pub records: Vec<MessageTraceRecord>,
    pub page_no: u32,
    pub page_size: u32,
    /// Matching records found (at most 10,000 are read from each broker).
    pub total: i64,
    /// Live brokers asked (those that sent a heartbeat within `broker_silent_secs`); 0 when none
    /// is live, and then there are no records to show.
    pub brokers_asked: u32,
    /// Brokers that did not answer in time: their records are missing.
    pub missing_nodes: Vec<String>,
}

/// What to look for, checked.
pub(crate) struct TraceRequest {
    pub msg_id: Option<String>,
    pub client_id: Option<String>,
    pub kind: Option<TraceKind>,
    pub begin_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub page: Page,
    pub newest_first: bool,
}

/// The merged answer of every live broker.
pub(crate) async fn trace(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
    req: TraceRequest,
) -> ApiResult<MessageTracePage> {
    caller.require_instance(instance_id)?;
    instances::quotas(&state.db, instance_id).await?;
    if req.msg_id.is_none() && req.client_id.is_none() {
        return Err(ApiError::invalid("msgId", "msgId or clientId is required"));
    }
    if let Some(m) = &req.msg_id
        && !(m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::invalid("msgId", "must be 32 hexadecimal characters"));
    }
    let now = crate::clock::now_ms();
    let end_ms = req.end_ms.unwrap_or(now + 1);
    let begin_ms = req.begin_ms.unwrap_or(now - RETENTION_MS);
    if begin_ms >= end_ms {
        return Err(ApiError::invalid("beginTime", "must be before endTime"));
    }
    let wanted = (req.page.offset() + req.page.limit()).min(i64::from(MAX_RECORDS)) as u32;
    let silent_after = Duration::from_secs(state.config.broker_silent_secs);
    let nodes = db::brokers::live(&state.db, silent_after).await?;
    if nodes.is_empty() {
        // The records live on the brokers: with none running there is nothing to show, and the
        // answer says that no broker was asked.
        return Ok(MessageTracePage {
            records: Vec::new(),
            page_no: req.page.no,
            page_size: req.page.size,
            total: 0,
            brokers_asked: 0,
            missing_nodes: Vec::new(),
        });
    }
    let brokers_asked = nodes.len() as u32;
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    db::trace_queries::start(&state.db, &request_id, &nodes).await?;
    // Subscribe before the brokers can answer, so every answer wakes us.
    let mut waiter = state.feeds.rule_tests();
    let query = TraceQuery {
        instance_id: instance_id.to_string(),
        msg_id: req.msg_id.map(|m| m.to_ascii_uppercase()),
        client_id: req.client_id,
        kind: req.kind,
        begin_ms,
        end_ms,
        limit: wanted,
        newest_first: req.newest_first,
    };
    db::commands::insert(
        &state.db,
        &Command::TraceQuery {
            request_id: request_id.clone(),
            query,
        },
    )
    .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(state.config.rule_test_timeout_secs);
    let (answers, missing) = loop {
        let (answers, waiting) = db::trace_queries::answers(&state.db, &request_id).await?;
        if waiting.is_empty() || waiter.wait_until(deadline).await != Wake::Changed {
            break (answers, waiting);
        }
    };
    if !missing.is_empty() {
        crate::metrics::trace_query_incomplete();
        tracing::warn!(instance = instance_id, missing = ?missing, "trace query: brokers did not answer in time");
    }
    let records = merge(answers.into_iter().flat_map(|a| a.records).collect(), req.newest_first);
    let total = records.len() as i64;
    let page = records
        .into_iter()
        .skip(req.page.offset() as usize)
        .take(req.page.limit() as usize)
        .map(|r| MessageTraceRecord {
            time: r.time,
            msg_id: r.msg_id,
            client_id: r.client_id,
            action: r.action,
        })
        .collect();
    Ok(MessageTracePage {
        records: page,
        page_no: req.page.no,
        page_size: req.page.size,
        total,
        brokers_asked,
        missing_nodes: missing,
    })
}

/// Every broker's records in one time order (within a millisecond a publication before its
/// deliveries); a backend publication recorded by more than one broker counts once.
fn merge(mut records: Vec<TraceRecord>, newest_first: bool) -> Vec<TraceRecord> {
    records.sort_by_key(|r| (r.time, r.action.kind() == TraceKind::Delivery, r.msg_id.clone()));
    let mut seen = std::collections::HashSet::new();
    records.retain(|r| r.action != TraceAction::PubBackend || seen.insert(r.msg_id.clone()));
    if newest_first {
        records.reverse();
    }
    records
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/message-trace", operation_id = "QueryMessageTrace", tag = "trace",
    params(("instanceId" = String, Path), MessageTraceParams), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = MessageTracePage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn query_message_trace(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    params: Result<Query<MessageTraceParams>, QueryRejection>,
) -> ApiResult<Json<MessageTracePage>> {
    caller.require_instance(&instance_id)?;
    let Query(p) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let kind = match p.kind.as_deref() {
        None | Some("") => None,
        Some("publish") => Some(TraceKind::Publish),
        Some("delivery") => Some(TraceKind::Delivery),
        Some(_) => return Err(ApiError::invalid("kind", "must be publish or delivery")),
    };
    let req = TraceRequest {
        msg_id: p.msg_id.filter(|m| !m.is_empty()),
        client_id: p.client_id.filter(|c| !c.is_empty()),
        kind,
        begin_ms: p.begin_time,
        end_ms: p.end_time,
        page: Page::new(p.page_no, p.page_size, 20)?,
        newest_first: p.reverse.unwrap_or(false),
    };
    Ok(Json(trace(&state, &caller, &instance_id, req).await?))
}
