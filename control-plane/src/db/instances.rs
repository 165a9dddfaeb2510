//! Instances: the tenant rows with their quotas, and the per-instance usage counts.

use chrono::{DateTime, Utc};
use common::quotas::Quotas;
use sqlx::types::Json;
use sqlx::{FromRow, PgPool};

use super::{ConfigTx, unique_violation};
use crate::error::{ApiError, ApiResult};

#[derive(FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub name: String,
    pub description: String,
    #[sqlx(json)]
    pub quotas: Quotas,
    pub reject_duplicate_client_id: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How much of each quota an instance uses.
#[derive(FromRow)]
pub struct Usage {
    pub parent_topics: i64,
    pub group_ids: i64,
    pub device_credentials: i64,
    pub access_keys: i64,
    pub rules: i64,
}

/// What an instance holds that a quota bounds: lowering the quota below it is refused.
#[derive(FromRow)]
pub struct Holdings {
    pub parent_topics: i64,
    /// Characters of the longest parent topic (a topic under it is at least that long).
    pub longest_parent_topic: i32,
    /// Bytes of the longest device credential client ID (the broker refuses a snapshot whose client
    /// IDs exceed `maxClientIdLength`).
    pub longest_device_client_id: i32,
    /// Resources of the largest token that is neither revoked nor expired.
    pub most_token_resources: i32,
    pub rules: i64,
    /// Characters of the longest client ID in custom authentication (a CLIENT identity's or a
    /// blacklisted one) and of the longest permission topic: brokers check both against the limits.
    pub longest_custom_client_id: i32,
    pub longest_permission_topic: i32,
    /// Custom-auth identities, and permissions plus blacklist entries (each at most `maxConnections`).
    pub custom_identities: i64,
    pub custom_entries: i64,
}

pub struct NewInstance<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub quotas: &'a Quotas,
    pub reject_duplicate_client_id: bool,
}

/// An update; `None` keeps the current value. The quotas are always written (the caller merged them
/// into the locked current ones).
pub struct InstanceUpdate<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub quotas: &'a Quotas,
    pub reject_duplicate_client_id: Option<bool>,
}

impl ConfigTx {
    /// The quotas of an existing instance, locking its row: concurrent changes inside one instance
    /// (and their quota checks) take turns. Records the instance's settings as changed. 404 when it
    /// does not exist.
    pub async fn lock_instance(&mut self, instance_id: &str) -> ApiResult<Quotas> {
        let quotas = self.lock_instance_for_devices(instance_id).await?;
        self.touch(instance_id);
        Ok(quotas)
    }

    /// As `lock_instance`, for a change to device credentials only: those are recorded one by one
    /// (`touch_device`), so the instance's settings do not travel to brokers again.
    pub async fn lock_instance_for_devices(&mut self, instance_id: &str) -> ApiResult<Quotas> {
        let row: Option<(Json<Quotas>,)> = sqlx::query_as("select quotas from instances where id = $1 for update")
            .bind(instance_id)
            .fetch_optional(self.conn())
            .await?;
        let (Json(quotas),) = row.ok_or(ApiError::NotFound("instance"))?;
        Ok(quotas)
    }
}

/// What the instance holds, read in the transaction that locked it (so nothing is added meanwhile).
pub async fn holdings(tx: &mut ConfigTx, id: &str, now_ms: i64) -> Result<Holdings, sqlx::Error> {
    sqlx::query_as(
        "select (select count(*) from parent_topics where instance_id = $1) as parent_topics,
                (select coalesce(max(char_length(name)), 0) from parent_topics where instance_id = $1)
                    as longest_parent_topic,
                (select coalesce(max(octet_length(client_id)), 0) from device_credentials where instance_id = $1)
                    as longest_device_client_id,
                (select coalesce(max(jsonb_array_length(claims -> 'res')), 0) from tokens
                    where instance_id = $1 and revoked_at is null and expires_at_ms > $2) as most_token_resources,
                (select count(*) from rules where instance_id = $1) as rules,
                greatest((select coalesce(max(char_length(client_id)), 0) from custom_auth_identities
                            where instance_id = $1),
                         (select coalesce(max(char_length(client_id)), 0) from custom_auth_connect_blacklist
                            where instance_id = $1)) as longest_custom_client_id,
                (select coalesce(max(char_length(topic)), 0) from custom_auth_permissions where instance_id = $1)
                    as longest_permission_topic,
                (select count(*) from custom_auth_identities where instance_id = $1) as custom_identities,
                (select count(*) from custom_auth_permissions where instance_id = $1)
                  + (select count(*) from custom_auth_connect_blacklist where instance_id = $1) as custom_entries",
    )
    .bind(id)
    .bind(now_ms)
    .fetch_one(tx.conn())
    .await
}

/// The quotas of an existing instance, without locking; 404 when it does not exist.
pub async fn quotas(pool: &PgPool, instance_id: &str) -> ApiResult<Quotas> {
    let row: Option<(Json<Quotas>,)> = sqlx::query_as("select quotas from instances where id = $1")
        .bind(instance_id)
        .fetch_optional(pool)
        .await?;
    row.map(|(Json(q),)| q).ok_or(ApiError::NotFound("instance"))
}

/// 409 when the name is taken (case-insensitively).
pub async fn create(tx: &mut ConfigTx, new: &NewInstance<'_>) -> ApiResult<InstanceRow> {
    let row = sqlx::query_as(
        "insert into instances (id, name, description, quotas, reject_duplicate_client_id)
         values ($1, $2, $3, $4, $5)
         returning id, name, description, quotas, reject_duplicate_client_id, created_at, updated_at",
    )
    .bind(new.id)
    .bind(new.name)
    .bind(new.description)
    .bind(Json(new.quotas))
    .bind(new.reject_duplicate_client_id)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| unique_violation(e, new.name))?;
    tx.touch_created(new.id);
    Ok(row)
}

/// Updates an instance the caller locked (`ConfigTx::lock_instance`); 409 when the new name is taken.
pub async fn update(tx: &mut ConfigTx, id: &str, update: &InstanceUpdate<'_>) -> ApiResult<InstanceRow> {
    tx.touch(id);
    sqlx::query_as(
        "update instances set name = coalesce($2, name), description = coalesce($3, description), quotas = $4,
            reject_duplicate_client_id = coalesce($5, reject_duplicate_client_id), updated_at = now()
         where id = $1
         returning id, name, description, quotas, reject_duplicate_client_id, created_at, updated_at",
    )
    .bind(id)
    .bind(update.name)
    .bind(update.description)
    .bind(Json(update.quotas))
    .bind(update.reject_duplicate_client_id)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| unique_violation(e, update.name.unwrap_or_default()))
}

/// Deletes the instance and everything in it (cascade); false when there was none.
pub async fn delete(tx: &mut ConfigTx, id: &str) -> Result<bool, sqlx::Error> {
    tx.touch(id);
    let deleted = sqlx::query("delete from instances where id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

/// Every instance, or with `bound_to` only those that AccessKey is bound to.
pub async fn list(pool: &PgPool, bound_to: Option<&str>) -> Result<Vec<InstanceRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, name, description, quotas, reject_duplicate_client_id, created_at, updated_at
         from instances i
         where $1::text is null
            or exists(select 1 from access_key_instances b where b.instance_id = i.id and b.access_key_id = $1)
         order by created_at, id",
    )
    .bind(bound_to)
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, id: &str) -> Result<Option<InstanceRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, name, description, quotas, reject_duplicate_client_id, created_at, updated_at
         from instances where id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn usage(pool: &PgPool, id: &str) -> Result<Usage, sqlx::Error> {
    sqlx::query_as(
        "select (select count(*) from parent_topics where instance_id = $1) as parent_topics,
                (select count(*) from group_ids where instance_id = $1) as group_ids,
                (select count(*) from device_credentials where instance_id = $1) as device_credentials,
                (select count(*) from access_key_instances where instance_id = $1) as access_keys,
                (select count(*) from rules where instance_id = $1) as rules",
    )
    .bind(id)
    .fetch_one(pool)
    .await
}
