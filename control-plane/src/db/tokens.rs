//! Issued client tokens: recorded by id and SHA-256 so they can be revoked and queried by their
//! string. Issuing changes nothing brokers hold; revoking does (revocations are in the snapshot).

use common::quotas::Quotas;
use common::token::TokenClaims;
use sqlx::types::Json;
use sqlx::{FromRow, PgPool};

use super::ConfigTx;

/// What issuing a token on an instance needs to know, read in one round trip.
pub struct IssueContext {
    pub quotas: Quotas,
    /// Whether the AccessKey asked about is bound to the instance.
    pub access_key_bound: bool,
}

#[derive(FromRow)]
pub struct StoredToken {
    pub jti: String,
    pub expires_at_ms: i64,
    pub revoked: bool,
}

/// `None` when the instance does not exist.
pub async fn issue_context(
    pool: &PgPool,
    instance_id: &str,
    access_key_id: Option<&str>,
) -> Result<Option<IssueContext>, sqlx::Error> {
    let row: Option<(Json<Quotas>, bool)> = sqlx::query_as(
        "select quotas, exists(select 1 from access_key_instances where access_key_id = $2 and instance_id = $1)
         from instances where id = $1",
    )
    .bind(instance_id)
    .bind(access_key_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(Json(quotas), access_key_bound)| IssueContext {
        quotas,
        access_key_bound,
    }))
}

/// Records an issued token, provided every one of `parents` is a parent topic of its instance (in
/// the same statement, so a topic deleted meanwhile cannot slip through); false when one is not.
pub async fn record(
    pool: &PgPool,
    claims: &TokenClaims,
    token_sha256: &str,
    parents: &[String],
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "insert into tokens (jti, instance_id, access_key_id, token_sha256, claims, expires_at_ms)
         select $1, $2, $3, $4, $5, $6
         where (select count(*) from parent_topics where instance_id = $2 and name = any($7)) = $8",
    )
    .bind(&claims.jti)
    .bind(&claims.iid)
    .bind(&claims.ak)
    .bind(token_sha256)
    .bind(Json(claims))
    .bind(claims.exp_ms)
    .bind(parents)
    .bind(parents.len() as i64)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// The token with this SHA-256 issued on this instance.
pub async fn find(pool: &PgPool, instance_id: &str, token_sha256: &str) -> Result<Option<StoredToken>, sqlx::Error> {
    sqlx::query_as(
        "select jti, expires_at_ms, revoked_at is not null as revoked from tokens
         where token_sha256 = $1 and instance_id = $2",
    )
    .bind(token_sha256)
    .bind(instance_id)
    .fetch_optional(pool)
    .await
}

pub async fn revoke(tx: &mut ConfigTx, instance_id: &str, jti: &str) -> Result<(), sqlx::Error> {
    tx.touch(instance_id);
    sqlx::query("update tokens set revoked_at = now(), updated_at = now() where jti = $1 and revoked_at is null")
        .bind(jti)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Deletes the records of tokens that expired before `before_ms`.
pub async fn purge_expired(pool: &PgPool, before_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("delete from tokens where expires_at_ms < $1")
        .bind(before_ms)
        .execute(pool)
        .await?
        .rows_affected())
}
