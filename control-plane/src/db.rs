//! PostgreSQL access shared by all resources: the pool, migrations, the config version bump and the
//! mapping of constraint violations to API errors.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::error::ApiError;

pub type Tx = Transaction<'static, Postgres>;

/// Connects and applies the migrations in `migrations/` (embedded at build time).
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
    sqlx::migrate!("../migrations").run(&pool).await?;
    Ok(pool)
}

/// Bumps the snapshot version inside the caller's transaction, so a broker never sees a version
/// without the change (or the change without a new version). NOTIFY fires only on commit.
pub async fn bump_config_version(conn: &mut PgConnection) -> Result<i64, ApiError> {
    let (version,): (i64,) = sqlx::query_as(
        "update config_version set version = version + 1, updated_at = now() where id returning version",
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("select pg_notify('config_version', $1::text)")
        .bind(version)
        .execute(&mut *conn)
        .await?;
    Ok(version)
}

/// Turns a unique violation into 409 with `what`, other errors into 500.
pub fn conflict(e: sqlx::Error, what: impl FnOnce() -> String) -> ApiError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::AlreadyExists(what()),
        _ => ApiError::from(e),
    }
}
