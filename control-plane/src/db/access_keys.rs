//! AccessKeys and their instance bindings. Brokers hold every key bound to an instance, so each
//! change records the instances bound before and after it.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor, PgPool};

use super::ConfigTx;

#[derive(FromRow)]
pub struct AccessKeyRow {
    pub id: String,
    pub enabled: bool,
    pub description: String,
    pub instance_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What request signature checks need.
#[derive(FromRow)]
pub struct KeySecret {
    pub secret_enc: Vec<u8>,
    pub enabled: bool,
}

const SELECT: &str = "select k.id, k.enabled, k.description, k.created_at, k.updated_at,
    coalesce(array_agg(b.instance_id order by b.instance_id) filter (where b.instance_id is not null), '{}') as instance_ids
    from access_keys k left join access_key_instances b on b.access_key_id = k.id";

/// A new key, bound to no instance yet (`bind_instances`).
pub async fn create(tx: &mut ConfigTx, id: &str, secret_enc: &[u8], description: &str) -> Result<(), sqlx::Error> {
    sqlx::query("insert into access_keys (id, secret_enc, description) values ($1, $2, $3)")
        .bind(id)
        .bind(secret_enc)
        .bind(description)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Replaces the key's bindings. False, with nothing changed, when an id names no instance.
pub async fn bind_instances(tx: &mut ConfigTx, id: &str, instance_ids: &[String]) -> Result<bool, sqlx::Error> {
    let mut unique = instance_ids.to_vec();
    unique.sort();
    unique.dedup();
    let (known,): (i64,) = sqlx::query_as("select count(*) from instances where id = any($1)")
        .bind(&unique)
        .fetch_one(tx.conn())
        .await?;
    if known != unique.len() as i64 {
        return Ok(false);
    }
    let unbound: Vec<(String,)> =
        sqlx::query_as("delete from access_key_instances where access_key_id = $1 returning instance_id")
            .bind(id)
            .fetch_all(tx.conn())
            .await?;
    sqlx::query("insert into access_key_instances (access_key_id, instance_id) select $1, unnest($2::text[])")
        .bind(id)
        .bind(&unique)
        .execute(tx.conn())
        .await?;
    for instance_id in unbound.iter().map(|(i,)| i).chain(&unique) {
        tx.touch(instance_id);
    }
    Ok(true)
}

/// Changes `enabled` and `description` (`None` keeps the value); false when there is no such key.
pub async fn update(
    tx: &mut ConfigTx,
    id: &str,
    enabled: Option<bool>,
    description: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "update access_keys set enabled = coalesce($2, enabled), description = coalesce($3, description),
         updated_at = now() where id = $1",
    )
    .bind(id)
    .bind(enabled)
    .bind(description)
    .execute(tx.conn())
    .await?
    .rows_affected();
    touch_bound(tx, id).await?;
    Ok(updated > 0)
}

/// Deletes the key and its bindings (cascade); false when there was none.
pub async fn delete(tx: &mut ConfigTx, id: &str) -> Result<bool, sqlx::Error> {
    touch_bound(tx, id).await?;
    let deleted = sqlx::query("delete from access_keys where id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

async fn touch_bound(tx: &mut ConfigTx, id: &str) -> Result<(), sqlx::Error> {
    for instance_id in bound_instances(tx.conn(), id).await? {
        tx.touch(&instance_id);
    }
    Ok(())
}

/// The key as the transaction sees it, i.e. as it will be once committed.
pub async fn fetch(tx: &mut ConfigTx, id: &str) -> Result<Option<AccessKeyRow>, sqlx::Error> {
    select_one(tx.conn(), id).await
}

pub async fn get(pool: &PgPool, id: &str) -> Result<Option<AccessKeyRow>, sqlx::Error> {
    select_one(pool, id).await
}

async fn select_one<'c>(conn: impl PgExecutor<'c>, id: &str) -> Result<Option<AccessKeyRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} where k.id = $1 group by k.id")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn list(pool: &PgPool) -> Result<Vec<AccessKeyRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} group by k.id order by k.created_at, k.id"
    )))
    .fetch_all(pool)
    .await
}

pub async fn secret(pool: &PgPool, id: &str) -> Result<Option<KeySecret>, sqlx::Error> {
    sqlx::query_as("select secret_enc, enabled from access_keys where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The instances the key is bound to.
pub async fn bound_instances<'c>(conn: impl PgExecutor<'c>, id: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as("select instance_id from access_key_instances where access_key_id = $1")
        .bind(id)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(i,)| i).collect())
}
