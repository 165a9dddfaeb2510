//! Trace: a client's connect / disconnect / tcpclean history (docs/spec.md 3.8 events as brokers reported
//! them), newest first, kept 7 days.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::paging::Page;
use crate::auth::Caller;
use crate::db::events::{self, EventQuery, EventRow};
use crate::db::instances;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ClientEventParams {
    /// The client whose history is listed (required).
    pub client_id: Option<String>,
    /// Only events at or after this epoch ms.
    pub start_time: Option<i64>,
    /// Only events before this epoch ms.
    pub end_time: Option<i64>,
    /// 1-based page number [default 1].
    pub page_no: Option<u32>,
    /// 1-100 [default 20].
    pub page_size: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientEventRecord {
    pub client_id: String,
    /// `connect`, `disconnect` (the client sent DISCONNECT) or `tcpclean` (the connection is gone).
    pub event_type: String,
    /// Epoch ms, as the broker saw it.
    pub time: i64,
    pub channel_id: String,
    /// `ip:port`.
    pub client_ip: String,
    pub node_id: String,
    /// `tcpclean` only: why the connection ended or the CONNECT was refused (`not authorized`,
    /// `clientId conflict`, `resource auth failed`, `no heart`, `closed by client`, `disconnected by
    /// client`, `invalid param`, `Socket IOException`, `closed by server`, `quota exceeded`, `server
    /// unavailable`). A refused CONNECT is a `tcpclean` whose channel has no `connect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientEventPage {
    pub events: Vec<ClientEventRecord>,
    pub page_no: u32,
    pub page_size: u32,
    pub total: i64,
}

impl From<EventRow> for ClientEventRecord {
    fn from(row: EventRow) -> Self {
        Self {
            client_id: row.client_id,
            event_type: row.event_type,
            time: row.time_ms,
            channel_id: row.channel_id,
            client_ip: row.client_ip,
            node_id: row.node_id,
            reason: row.reason,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/client-events", operation_id = "ListClientEvents", tag = "trace",
    params(("instanceId" = String, Path), ClientEventParams), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = ClientEventPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list_client_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    params: Result<Query<ClientEventParams>, QueryRejection>,
) -> ApiResult<Json<ClientEventPage>> {
    caller.require_instance(&instance_id)?;
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let client_id = params
        .client_id
        .ok_or_else(|| ApiError::invalid("clientId", "is required"))?;
    let page = Page::new(params.page_no, params.page_size, 20)?;
    let span = (params.start_time, params.end_time);
    Ok(Json(
        client_events(&state, &caller, &instance_id, &client_id, span, page, false).await?,
    ))
}

/// A page of the client's events in `[start, end)` (either open), oldest or newest first; for
/// ListClientEvents and Alibaba's QueryMqttTraceDevice.
pub(crate) async fn client_events(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
    client_id: &str,
    (start_ms, end_ms): (Option<i64>, Option<i64>),
    page: Page,
    oldest_first: bool,
) -> ApiResult<ClientEventPage> {
    caller.require_instance(instance_id)?;
    instances::quotas(&state.db, instance_id).await?;
    let query = EventQuery {
        instance_id,
        client_id,
        start_ms,
        end_ms,
        limit: page.limit(),
        offset: page.offset(),
        oldest_first,
    };
    let (rows, total) = events::page(&state.db, &query).await?;
    Ok(ClientEventPage {
        events: rows.into_iter().map(ClientEventRecord::from).collect(),
        page_no: page.no,
        page_size: page.size,
        total,
    })
}
