//! ACS3 request nonces, kept until `expires_at` so that a replay is caught by any replica.

use std::time::Duration;

use sqlx::PgPool;

/// Records the nonce for `ttl`; false when the key used it already.
pub async fn record(pool: &PgPool, access_key_id: &str, nonce: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
    let fresh = sqlx::query(
        "insert into request_nonces (access_key_id, nonce, expires_at)
         values ($1, $2, now() + make_interval(secs => $3)) on conflict do nothing",
    )
    .bind(access_key_id)
    .bind(nonce)
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(fresh > 0)
}

pub async fn purge_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("delete from request_nonces where expires_at < now()")
        .execute(pool)
        .await?
        .rows_affected())
}
