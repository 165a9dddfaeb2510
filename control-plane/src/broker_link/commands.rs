//! The broadcast command log (`broker_commands`): kick and SendMessage are appended here and brokers
//! long-poll them; every broker acts on the clients it holds.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use common::sync::{Command, CommandBatch, SequencedCommand};
use sqlx::PgPool;
use sqlx::types::Json as Jsonb;

use super::PollParams;
use super::feeds::Wake;
use crate::auth::node::Node;
use crate::db::COMMANDS_CHANNEL;
use crate::error::ApiResult;
use crate::state::AppState;

/// Most commands per answer; the broker polls again with the last `seq` it got.
const MAX_BATCH: i64 = 1000;

/// Advisory lock key that serializes command inserts (an arbitrary constant, "cmds").
const INSERT_LOCK: i64 = 0x636d_6473;

/// Appends a command and wakes the pollers; returns its sequence number.
pub async fn broadcast(db: &PgPool, command: &Command) -> Result<i64, sqlx::Error> {
    let mut tx = db.begin().await?;
    // Sequence numbers are taken before commit; without this lock a poller could see seq n+1 commit
    // before n and then skip n forever (it asks for `after = n+1`). Holding the lock until commit makes
    // commit order equal seq order. Commands are rare (operator actions), so the lock costs nothing.
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(INSERT_LOCK)
        .execute(&mut *tx)
        .await?;
    let (seq,): (i64,) = sqlx::query_as("insert into broker_commands (command) values ($1) returning seq")
        .bind(Jsonb(command))
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("select pg_notify($1, $2::text)")
        .bind(COMMANDS_CHANNEL)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(seq)
}

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
