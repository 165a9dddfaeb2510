//! The broadcast command log (`broker_commands`), ordered by sequence number.

use std::time::Duration;

use common::sync::{Command, SequencedCommand};
use sqlx::PgPool;
use sqlx::types::Json;

use super::COMMANDS_CHANNEL;

/// Advisory lock key that serializes command inserts (an arbitrary constant, "cmds").
const INSERT_LOCK: i64 = 0x636d_6473;

/// Appends a command and notifies `COMMANDS_CHANNEL`; returns its sequence number.
pub async fn insert(pool: &PgPool, command: &Command) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Sequence numbers are taken before commit; without this lock a poller could see seq n+1 commit
    // before n and then skip n forever (it asks for `after = n+1`). Holding the lock until commit makes
    // commit order equal seq order. Commands are rare (operator actions), so the lock costs nothing.
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(INSERT_LOCK)
        .execute(&mut *tx)
        .await?;
    let (seq,): (i64,) = sqlx::query_as("insert into broker_commands (command) values ($1) returning seq")
        .bind(Json(command))
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

/// The highest sequence number issued (0 before the first command).
pub async fn latest_seq(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let (latest,): (i64,) = sqlx::query_as("select coalesce(max(seq), 0) from broker_commands")
        .fetch_one(pool)
        .await?;
    Ok(latest)
}

/// Up to `limit` commands after `seq`, in order.
pub async fn after(pool: &PgPool, seq: i64, limit: i64) -> Result<Vec<SequencedCommand>, sqlx::Error> {
    let rows: Vec<(i64, Json<Command>)> =
        sqlx::query_as("select seq, command from broker_commands where seq > $1 order by seq limit $2")
            .bind(seq)
            .bind(limit)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, Json(command))| SequencedCommand { seq, command })
        .collect())
}

/// Deletes commands older than `max_age` but the newest, which carries the latest sequence number
/// pollers resume from.
pub async fn purge_older_than(pool: &PgPool, max_age: Duration) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "delete from broker_commands where created_at < now() - make_interval(secs => $1)
           and seq < (select max(seq) from broker_commands)",
    )
    .bind(max_age.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected())
}
