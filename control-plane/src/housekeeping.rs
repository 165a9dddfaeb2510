//! Periodic clean-up shared by all replicas (each statement is idempotent, so replicas may overlap):
//! expired request nonces, token records a day past their expiry (they can no longer be queried
//! usefully, and brokers no longer need their revocations), client event history older than 7 days,
//! broker commands older than 10 minutes (brokers poll every few seconds) and configuration change
//! records older than 7 days (by age rather than by count of versions, so the horizon of
//! incremental configuration does not shrink during bursts of changes).

use std::time::Duration;

use sqlx::PgPool;

const TOKEN_GRACE_MS: i64 = 24 * 3600 * 1000;
const CONFIG_CHANGE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Rows deleted by one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub nonces: u64,
    pub tokens: u64,
    pub client_events: u64,
    pub commands: u64,
    pub config_changes: u64,
}

pub async fn run_once(db: &PgPool) -> Result<Purged, sqlx::Error> {
    let nonces = crate::auth::access_key::purge_nonces(db).await?;
    let tokens = sqlx::query("delete from tokens where expires_at_ms < $1")
        .bind(crate::clock::now_ms() - TOKEN_GRACE_MS)
        .execute(db)
        .await?
        .rows_affected();
    let client_events = sqlx::query("delete from client_events where created_at < now() - interval '7 days'")
        .execute(db)
        .await?
        .rows_affected();
    // The newest command stays: it carries the latest sequence number pollers resume from.
    let commands = sqlx::query(
        "delete from broker_commands where created_at < now() - interval '10 minutes'
           and seq < (select max(seq) from broker_commands)",
    )
    .execute(db)
    .await?
    .rows_affected();
    let config_changes = crate::db::purge_changes_older_than(db, CONFIG_CHANGE_RETENTION).await?;
    Ok(Purged {
        nonces,
        tokens,
        client_events,
        commands,
        config_changes,
    })
}

/// Runs `run_once` every minute until the task is aborted.
pub async fn run(db: PgPool) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        match run_once(&db).await {
            Ok(purged) => tracing::debug!(?purged, "housekeeping"),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
    }
}
