//! The broadcast command log brokers long-poll (`broker_commands`): kick and SendMessage. Every
//! broker acts on the clients it holds.

use common::sync::Command;
use sqlx::PgPool;
use sqlx::types::Json;

use crate::feeds::COMMANDS_CHANNEL;

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
