//! PostgreSQL, and all the SQL the control plane runs: the pool and migrations here, the config
//! transaction (`ConfigTx`) every change of broker configuration goes through, and one module of
//! queries per resource. Handlers and `auth` call these functions and run no SQL of their own.

pub mod access_keys;
pub mod brokers;
pub mod commands;
mod config_tx;
pub mod custom_auth;
pub mod devices;
pub mod events;
pub mod groups;
pub mod instances;
pub mod nonces;
pub mod operators;
pub mod rule_reports;
pub mod rules;
pub mod sessions;
pub mod signing_keys;
pub mod snapshot;
pub mod tokens;
pub mod topics;
pub mod trace_queries;
pub mod usage;

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

pub use self::config_tx::{ConfigTx, purge_changes_older_than};
use crate::error::ApiError;

/// NOTIFY channel of committed configuration changes (payload: the new version).
pub const CONFIG_CHANNEL: &str = "config_version";
/// NOTIFY channel of inserted broker commands (payload: the new sequence number).
pub const COMMANDS_CHANNEL: &str = "broker_commands";
/// NOTIFY channel of brokers' answers to TestRule (payload: the request id).
pub const RULE_TESTS_CHANNEL: &str = "rule_tests";

/// How long start-up waits for PostgreSQL (docker compose may start both at once).
const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// The pool options of every pool the control plane opens. `acquire_timeout` bounds each wait for a
/// connection, including the connection attempts sqlx repeats while the server refuses them: with
/// PostgreSQL stopped a request answers 503 after about that long instead of hanging. Idle
/// connections are pinged before use (sqlx's default), so after an outage broken ones are replaced
/// and the pool recovers by itself.
pub fn pool_options(max_connections: u32, acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
}

/// Connects (waiting up to 30 s for PostgreSQL at start-up) and applies the migrations in
/// `migrations/` (embedded at build time).
pub async fn connect(url: &str, max_connections: u32, acquire_timeout: Duration) -> anyhow::Result<PgPool> {
    let pool = pool_options(max_connections, acquire_timeout)
        .connect_lazy(url)
        .map_err(|e| anyhow::anyhow!("bad database URL: {e}"))?;
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    loop {
        match pool.acquire().await {
            Ok(_) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "waiting for PostgreSQL");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => anyhow::bail!("cannot connect to PostgreSQL: {e}"),
        }
    }
    sqlx::migrate!("../migrations").run(&pool).await?;
    Ok(pool)
}

/// True when the database answers (readiness).
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("select 1").execute(pool).await.is_ok()
}

/// The configuration version brokers should have applied.
pub async fn config_version(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let (version,): (i64,) = sqlx::query_as("select version from config_version")
        .fetch_one(pool)
        .await?;
    Ok(version)
}

/// Turns the violation of a unique constraint the API explains into 409 naming `value` (what the
/// caller sent for the unique column); every other error, including unique constraints on
/// generated ids, is internal. The names are those of `migrations/`.
pub fn unique_violation(e: sqlx::Error, value: &str) -> ApiError {
    let constraint = match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => db.constraint(),
        _ => None,
    };
    let message = match constraint {
        Some("instances_name_ci") => format!("an instance named {value:?} already exists"),
        Some("parent_topics_pkey") => format!("parent topic {value:?} already exists"),
        Some("group_ids_pkey") => return group_exists(value),
        Some("device_credentials_pkey") => return credential_exists(value),
        Some("broker_nodes_pkey") => format!("broker node {value:?} already exists"),
        _ => return ApiError::from(e),
    };
    ApiError::AlreadyExists(message)
}

/// 409 for a group ID the instance has already.
pub fn group_exists(group_id: &str) -> ApiError {
    ApiError::AlreadyExists(format!("group ID {group_id:?} already exists"))
}

/// 409 for a client ID that has a device credential already.
pub fn credential_exists(client_id: &str) -> ApiError {
    ApiError::AlreadyExists(format!("client ID {client_id:?} already has a device credential"))
}
