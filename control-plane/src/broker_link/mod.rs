//! The control plane's side of the broker link (docs/sync-protocol.md, the `common::sync` contract):
//! the snapshot builder and its cache, the broadcast command log, the LISTEN feeds that wake
//! long-polls, and the `/api/v1/broker-sync/` routes brokers call, each authenticated by the `Node`
//! extractor. The routes live here rather than in `api` because they are this contract, not the
//! public REST API: they stay out of the OpenAPI document, and `api::router` only mounts them.

pub(crate) mod commands;
pub(crate) mod delta;
pub(crate) mod digest_check;
pub(crate) mod events;
pub(crate) mod feeds;
pub(crate) mod heartbeat;
pub(crate) mod rules;
pub mod snapshot;
pub(crate) mod trace;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::routing::{get, post};
use common::sync::{
    COMMAND_RESULTS_PATH, COMMANDS_PATH, DEAD_LETTERS_PATH, EVENTS_PATH, HEARTBEAT_PATH, SNAPSHOT_PATH,
    TRACE_ANSWERS_PATH,
};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Longest accepted long-poll; larger `waitSecs` are capped.
pub(crate) const MAX_WAIT_SECS: u64 = 60;
/// A busy broker sends big event batches (a reconnect storm); the default 2 MB would refuse them.
const EVENTS_BODY_LIMIT: usize = 16 << 20;
/// A heartbeat carries a line of figures (about 150 bytes) per instance with clients on the broker:
/// the API's 64 KiB would refuse a broker that serves more than a few hundred instances.
const HEARTBEAT_BODY_LIMIT: usize = 16 << 20;
/// A full dead-letter batch: 1000 letters of up to about 10 KB each (a 4 KiB body head in Base64
/// and texts of 1024 characters, JSON-escaped).
const DEAD_LETTERS_BODY_LIMIT: usize = 16 << 20;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(SNAPSHOT_PATH, get(snapshot::snapshot))
        .route(
            HEARTBEAT_PATH,
            post(heartbeat::heartbeat).layer(DefaultBodyLimit::max(HEARTBEAT_BODY_LIMIT)),
        )
        .route(
            EVENTS_PATH,
            post(events::events).layer(DefaultBodyLimit::max(EVENTS_BODY_LIMIT)),
        )
        .route(COMMANDS_PATH, get(commands::commands))
        .route(
            DEAD_LETTERS_PATH,
            post(rules::dead_letters).layer(DefaultBodyLimit::max(DEAD_LETTERS_BODY_LIMIT)),
        )
        .route(COMMAND_RESULTS_PATH, post(rules::command_results))
        .route(
            TRACE_ANSWERS_PATH,
            post(trace::trace_answers).layer(DefaultBodyLimit::max(trace::BODY_LIMIT)),
        )
}

/// `?after=<n>&waitSecs=<s>` of both long-polls.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PollParams {
    pub after: Option<i64>,
    /// Absent = answer at once; capped at `MAX_WAIT_SECS`.
    pub wait_secs: Option<u64>,
    /// Snapshot poll only: the broker applies deltas, so send one when the change records allow.
    #[serde(default)]
    pub deltas: bool,
}

impl PollParams {
    pub fn parse(q: Result<Query<Self>, QueryRejection>) -> ApiResult<Self> {
        q.map(|Query(p)| p)
            .map_err(|e| ApiError::invalid("query", e.body_text()))
    }

    pub fn deadline(&self) -> tokio::time::Instant {
        let wait = self.wait_secs.unwrap_or(0).min(MAX_WAIT_SECS);
        tokio::time::Instant::now() + Duration::from_secs(wait)
    }
}
