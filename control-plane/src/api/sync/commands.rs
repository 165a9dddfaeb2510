//! `GET commands?after=<seq>&waitSecs=<n>`: broadcast commands with a higher sequence number, at once
//! or as soon as one is inserted; an empty batch when the wait ends.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use common::sync::{Command, CommandBatch, SequencedCommand};
use sqlx::types::Json as Jsonb;

use super::PollParams;
use crate::auth::node::Node;
use crate::error::ApiResult;
use crate::feeds::Wake;
use crate::state::AppState;

/// Most commands per answer; the broker polls again with the last `seq` it got.
const MAX_BATCH: i64 = 1000;

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
        let (latest,): (i64,) = sqlx::query_as("select coalesce(max(seq), 0) from broker_commands")
            .fetch_one(&state.db)
            .await?;
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
        let rows: Vec<(i64, Jsonb<Command>)> =
            sqlx::query_as("select seq, command from broker_commands where seq > $1 order by seq limit $2")
                .bind(after)
                .bind(MAX_BATCH)
                .fetch_all(&state.db)
                .await?;
        let latest_seq = rows.last().map_or(latest, |(seq, _)| *seq);
        let commands = rows
            .into_iter()
            .map(|(seq, Jsonb(command))| SequencedCommand { seq, command })
            .collect();
        return Ok(Json(CommandBatch { latest_seq, commands }));
    }
}
