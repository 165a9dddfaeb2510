//! GetInstanceUsageHistory: an instance's traffic over the last hours, one point per minute, from the
//! brokers' heartbeats (the current figures are in GetInstance's `usage`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::db::{instances, usage};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Most minutes one answer covers: the whole history kept (24 hours).
const MAX_MINUTES: u32 = (usage::HISTORY.as_secs() / 60) as u32;

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct UsageHistoryParams {
    /// The last this many minutes, 1-1440 [default 1440: everything kept].
    pub minutes: Option<u32>,
}

/// One minute: the highest totals across the brokers seen in it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsagePoint {
    /// The minute's start.
    pub time: DateTime<Utc>,
    pub connections: i64,
    pub subscriptions: i64,
    pub messages_in_per_sec: f64,
    pub messages_out_per_sec: f64,
    pub offline_messages: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageHistory {
    pub instance_id: String,
    /// Oldest first; minutes without any broker reporting the instance have no point.
    pub points: Vec<UsagePoint>,
}

impl From<usage::Point> for UsagePoint {
    fn from(p: usage::Point) -> Self {
        Self {
            time: p.minute,
            connections: p.connections,
            subscriptions: p.subscriptions,
            messages_in_per_sec: p.messages_in_per_sec,
            messages_out_per_sec: p.messages_out_per_sec,
            offline_messages: p.offline_messages,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/usage-history", operation_id = "GetInstanceUsageHistory", tag = "instances",
    params(("instanceId" = String, Path), UsageHistoryParams), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = UsageHistory), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_instance_usage_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    params: Result<Query<UsageHistoryParams>, QueryRejection>,
) -> ApiResult<Json<UsageHistory>> {
    caller.require_instance(&instance_id)?;
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let minutes = params.minutes.unwrap_or(MAX_MINUTES);
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(ApiError::invalid("minutes", format!("must be 1 to {MAX_MINUTES}")));
    }
    instances::quotas(&state.db, &instance_id).await?;
    let points = usage::history(&state.db, &instance_id, minutes).await?;
    Ok(Json(UsageHistory {
        instance_id,
        points: points.into_iter().map(UsagePoint::from).collect(),
    }))
}
