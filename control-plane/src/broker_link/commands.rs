//! `GET commands`: the long-poll of the broadcast command log (kick and SendMessage, appended by the
//! API through `db::commands::insert`); every broker acts on the clients it holds.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use common::sync::CommandBatch;

use super::PollParams;
use super::feeds::Wake;
use crate::auth::node::Node;
use crate::db;
use crate::error::ApiResult;
use crate::state::AppState;

/// Most commands per answer; the broker polls again with the last `seq` it got.
const MAX_BATCH: i64 = 1000;

/// `GET commands?after=<seq>&waitSecs=<n>`: broadcast commands with a higher sequence number, at once
/// or as soon as one is inserted; an empty batch when the wait ends.
pub async fn commands(
    State(state): State<AppState>,
    _node: Node,
    params: Result<Query<PollParams>, QueryRejection>,
) -> ApiResult<Json<CommandBatch>> {
    let params = PollParams::parse(params)?;
    let deadline = params.deadline();
    let mut waiter = state.feeds.commands();
    loop {
        // Housekeeping never prunes the newest row, so max(seq) survives quiet periods.
        let latest = db::commands::latest_seq(&state.db).await?;
        let Some(after) = params.after else {
            // No position yet: start from now (old commands are not for a broker that just started).
            return Ok(Json(CommandBatch {
                latest_seq: latest,
                commands: vec![],
            }));
        };
        // `after` beyond anything issued (the database was reset): tell the broker where we are.
        if after >= latest {
            if after > latest || waiter.wait_until(deadline).await != Wake::Changed {
                return Ok(Json(CommandBatch {
                    latest_seq: latest,
                    commands: vec![],
                }));
            }
            continue;
        }
        let commands = db::commands::after(&state.db, after, MAX_BATCH).await?;
        let latest_seq = commands.last().map_or(latest, |c| c.seq);
        return Ok(Json(CommandBatch { latest_seq, commands }));
    }
}
