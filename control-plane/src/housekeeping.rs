//! Periodic clean-up shared by all replicas (each statement is idempotent, so replicas may overlap):
//! expired request nonces, and token records a day past their expiry (they can no longer be queried
//! usefully, and brokers no longer need their revocations).

use std::time::Duration;

use sqlx::PgPool;

const TOKEN_GRACE_MS: i64 = 24 * 3600 * 1000;

pub async fn run_once(db: &PgPool) -> Result<(u64, u64), sqlx::Error> {
    let nonces = crate::auth::access_key::purge_nonces(db).await?;
    let tokens = sqlx::query("delete from tokens where expires_at_ms < $1")
        .bind(chrono::Utc::now().timestamp_millis() - TOKEN_GRACE_MS)
        .execute(db)
        .await?
        .rows_affected();
    Ok((nonces, tokens))
}

/// Runs `run_once` every minute until the task is aborted.
pub async fn run(db: PgPool) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        match run_once(&db).await {
            Ok((nonces, tokens)) => tracing::debug!(nonces, tokens, "housekeeping"),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
    }
}
