//! Trace: a client's connect / disconnect / tcpclean history (SPEC 3.8 events as brokers reported
//! them), newest first, kept 7 days.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::db::instances::quotas as instance_quotas;
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

#[derive(Serialize, ToSchema, FromRow)]
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
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientEventPage {
    pub events: Vec<ClientEventRecord>,
    pub page_no: u32,
    pub page_size: u32,
    pub total: i64,
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
    instance_quotas(&state.db, &instance_id).await?;
    let client_id = params
        .client_id
        .ok_or_else(|| ApiError::invalid("clientId", "is required"))?;
    let page_no = params.page_no.unwrap_or(1);
    let page_size = params.page_size.unwrap_or(20);
    if page_no < 1 {
        return Err(ApiError::invalid("pageNo", "must be at least 1"));
    }
    if !(1..=100).contains(&page_size) {
        return Err(ApiError::invalid("pageSize", "must be 1 to 100"));
    }
    let filter = "from client_events where instance_id = $1 and client_id = $2
        and ($3::int8 is null or time_ms >= $3) and ($4::int8 is null or time_ms < $4)";
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("select count(*) {filter}")))
        .bind(&instance_id)
        .bind(&client_id)
        .bind(params.start_time)
        .bind(params.end_time)
        .fetch_one(&state.db)
        .await?;
    let events = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select client_id, event_type, time_ms as time, channel_id, client_ip, node_id {filter}
         order by time_ms desc, id desc limit $5 offset $6"
    )))
    .bind(&instance_id)
    .bind(&client_id)
    .bind(params.start_time)
    .bind(params.end_time)
    .bind(i64::from(page_size))
    .bind(i64::from(page_no - 1) * i64::from(page_size))
    .fetch_all(&state.db)
    .await?;
    Ok(Json(ClientEventPage {
        events,
        page_no,
        page_size,
        total,
    }))
}
