//! `GET snapshot?after=<version>&waitSecs=<n>`: the full configuration as soon as its version differs
//! from the broker's, else 204 when the wait ends. The JSON is built once per version (`SnapshotCache`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::PollParams;
use crate::auth::node::Node;
use crate::error::{ApiError, ApiResult};
use crate::feeds::Wake;
use crate::state::AppState;

pub async fn snapshot(
    State(state): State<AppState>,
    _node: Node,
    params: Result<Query<PollParams>, QueryRejection>,
) -> ApiResult<Response> {
    let params = PollParams::parse(params)?;
    let deadline = params.deadline();
    // Subscribe before reading: a change committed after the read still wakes us.
    let mut waiter = state.feeds.config();
    loop {
        let (current,): (i64,) = sqlx::query_as("select version from config_version")
            .fetch_one(&state.db)
            .await?;
        if params.after != Some(current) {
            let json = state
                .snapshots
                .get(&state.db, &state.secrets, current)
                .await
                .map_err(ApiError::Internal)?;
            return Ok(([(CONTENT_TYPE, "application/json")], json).into_response());
        }
        if waiter.wait_until(deadline).await != Wake::Changed {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
}
