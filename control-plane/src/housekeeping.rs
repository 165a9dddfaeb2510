//! Periodic clean-up shared by all replicas (each statement is idempotent, so replicas may overlap):
//! expired request nonces, token records a day past their expiry (they can no longer be queried
//! usefully, and brokers no longer need their revocations), client event history older than 7 days,
//! broker commands and TestRule requests older than 10 minutes (brokers poll every few seconds) and configuration change
//! records older than 7 days (by age rather than by count of versions, so the horizon of
//! incremental configuration does not shrink during bursts of changes), per-instance usage history
//! older than 24 hours and brokers' per-instance figures not refreshed for 10 minutes.

use std::time::Duration;

use sqlx::PgPool;

use crate::db;

const TOKEN_GRACE_MS: i64 = 24 * 3600 * 1000;
const CLIENT_EVENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
const COMMAND_RETENTION: Duration = Duration::from_secs(10 * 60);
const CONFIG_CHANGE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Brokers replace their figures every few seconds: older ones belong to a broker that is gone (they
/// stopped counting after `broker_silent_secs` already).
const USAGE_REPORT_RETENTION: Duration = Duration::from_secs(10 * 60);

/// Rows deleted by one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub nonces: u64,
    pub tokens: u64,
    pub client_events: u64,
    /// Broker commands and the TestRule requests they carried.
    pub commands: u64,
    pub config_changes: u64,
    /// Usage history points and stale broker usage reports.
    pub usage: u64,
}

pub async fn run_once(pool: &PgPool) -> Result<Purged, sqlx::Error> {
    Ok(Purged {
        nonces: db::nonces::purge_expired(pool).await?,
        tokens: db::tokens::purge_expired(pool, crate::clock::now_ms() - TOKEN_GRACE_MS).await?,
        client_events: db::events::purge_older_than(pool, CLIENT_EVENT_RETENTION).await?,
        commands: db::commands::purge_older_than(pool, COMMAND_RETENTION).await?
            + db::rule_reports::purge_tests_older_than(pool, COMMAND_RETENTION).await?
            + db::trace_queries::purge_older_than(pool, COMMAND_RETENTION).await?,
        config_changes: db::purge_changes_older_than(pool, CONFIG_CHANGE_RETENTION).await?,
        usage: db::usage::purge(pool, USAGE_REPORT_RETENTION).await?,
    })
}

/// Runs `run_once` every minute, the first time a minute after start, until the task is aborted.
/// (Not at once: nothing is urgent at start, and a pass racing a test's own call to `run_once`
/// made that test flaky.)
pub(crate) async fn run(pool: PgPool) {
    let every = Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        match run_once(&pool).await {
            Ok(purged) => tracing::debug!(?purged, "housekeeping"),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
    }
}
