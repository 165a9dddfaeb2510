//! The reads behind the broker snapshot, in one repeatable-read transaction so that the version
//! always matches the content. Secrets come back encrypted; `broker_link::snapshot` opens them.

use common::quotas::Quotas;
use sqlx::{FromRow, PgPool};

/// Everything a snapshot holds, each list ordered by instance (and then by name or id).
pub struct SnapshotRows {
    pub version: i64,
    /// (kid, encrypted seed), oldest first.
    pub token_keys: Vec<(String, Vec<u8>)>,
    pub instances: Vec<InstanceRow>,
    /// (instance id, name).
    pub parent_topics: Vec<(String, String)>,
    /// (instance id, group id).
    pub group_ids: Vec<(String, String)>,
    pub access_keys: Vec<GrantRow>,
    pub devices: Vec<DeviceRow>,
    pub revoked_tokens: Vec<RevokedRow>,
}

#[derive(FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub name: String,
    #[sqlx(json)]
    pub quotas: Quotas,
    pub reject_duplicate_client_id: bool,
}

/// An AccessKey bound to an instance.
#[derive(FromRow)]
pub struct GrantRow {
    pub instance_id: String,
    pub id: String,
    pub secret_enc: Vec<u8>,
    pub enabled: bool,
}

#[derive(FromRow)]
pub struct DeviceRow {
    pub instance_id: String,
    pub client_id: String,
    pub device_access_key_id: String,
    pub secret_enc: Vec<u8>,
}

#[derive(FromRow)]
pub struct RevokedRow {
    pub instance_id: String,
    pub jti: String,
    pub expires_at_ms: i64,
}

/// Reads the current configuration; revoked tokens only while unexpired at `now_ms`.
pub async fn read(pool: &PgPool, now_ms: i64) -> Result<SnapshotRows, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let (version,): (i64,) = sqlx::query_as("select version from config_version")
        .fetch_one(&mut *tx)
        .await?;
    let token_keys = sqlx::query_as("select kid, seed_enc from token_signing_keys order by created_at")
        .fetch_all(&mut *tx)
        .await?;
    let instances = sqlx::query_as("select id, name, quotas, reject_duplicate_client_id from instances order by id")
        .fetch_all(&mut *tx)
        .await?;
    let parent_topics = sqlx::query_as("select instance_id, name from parent_topics order by instance_id, name")
        .fetch_all(&mut *tx)
        .await?;
    let group_ids = sqlx::query_as("select instance_id, group_id from group_ids order by instance_id, group_id")
        .fetch_all(&mut *tx)
        .await?;
    let access_keys = sqlx::query_as(
        "select b.instance_id, k.id, k.secret_enc, k.enabled from access_key_instances b
         join access_keys k on k.id = b.access_key_id order by b.instance_id, k.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let devices = sqlx::query_as(
        "select instance_id, client_id, device_access_key_id, secret_enc from device_credentials
         order by instance_id, client_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let revoked_tokens = sqlx::query_as(
        "select instance_id, jti, expires_at_ms from tokens
         where revoked_at is not null and expires_at_ms > $1 order by instance_id, jti",
    )
    .bind(now_ms)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(SnapshotRows {
        version,
        token_keys,
        instances,
        parent_topics,
        group_ids,
        access_keys,
        devices,
        revoked_tokens,
    })
}
