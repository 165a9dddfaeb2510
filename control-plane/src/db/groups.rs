//! Group IDs of an instance.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};

use super::{ConfigTx, group_exists};
use crate::error::ApiResult;

#[derive(FromRow)]
pub struct GroupRow {
    pub group_id: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// 409 when the instance has the group already.
pub async fn create(tx: &mut ConfigTx, instance_id: &str, group_id: &str, description: &str) -> ApiResult<GroupRow> {
    create_many(tx, instance_id, &[(group_id, description)])
        .await?
        .pop()
        .ok_or_else(|| group_exists(group_id))
}

/// Creates many groups of one instance in one statement; a group that exists already is left as
/// it is and missing from the answer (the caller reports it).
pub async fn create_many(
    tx: &mut ConfigTx,
    instance_id: &str,
    groups: &[(&str, &str)],
) -> Result<Vec<GroupRow>, sqlx::Error> {
    tx.touch(instance_id);
    let ids: Vec<&str> = groups.iter().map(|g| g.0).collect();
    let descriptions: Vec<&str> = groups.iter().map(|g| g.1).collect();
    sqlx::query_as(
        "insert into group_ids (instance_id, group_id, description)
         select $1, * from unnest($2::text[], $3::text[])
         on conflict (instance_id, group_id) do nothing
         returning group_id, description, created_at, updated_at",
    )
    .bind(instance_id)
    .bind(ids)
    .bind(descriptions)
    .fetch_all(tx.conn())
    .await
}

pub async fn list(pool: &PgPool, instance_id: &str) -> Result<Vec<GroupRow>, sqlx::Error> {
    sqlx::query_as(
        "select group_id, description, created_at, updated_at from group_ids
         where instance_id = $1 order by group_id",
    )
    .bind(instance_id)
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, instance_id: &str, group_id: &str) -> Result<Option<GroupRow>, sqlx::Error> {
    sqlx::query_as(
        "select group_id, description, created_at, updated_at from group_ids
         where instance_id = $1 and group_id = $2",
    )
    .bind(instance_id)
    .bind(group_id)
    .fetch_optional(pool)
    .await
}

/// The instance's group IDs, read inside the transaction that adds device credentials to them.
pub async fn ids(tx: &mut ConfigTx, instance_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("select group_id from group_ids where instance_id = $1")
        .bind(instance_id)
        .fetch_all(tx.conn())
        .await
}

/// Whether the group exists, asked inside the transaction that adds a device credential to it.
pub async fn exists(tx: &mut ConfigTx, instance_id: &str, group_id: &str) -> Result<bool, sqlx::Error> {
    let (exists,): (bool,) =
        sqlx::query_as("select exists(select 1 from group_ids where instance_id = $1 and group_id = $2)")
            .bind(instance_id)
            .bind(group_id)
            .fetch_one(tx.conn())
            .await?;
    Ok(exists)
}

/// Deletes the group and its device credentials (cascade, each recorded for the deltas); false when
/// the instance has no such group.
pub async fn delete(tx: &mut ConfigTx, instance_id: &str, group_id: &str) -> Result<bool, sqlx::Error> {
    tx.touch(instance_id);
    let cascaded: Vec<(String,)> =
        sqlx::query_as("select client_id from device_credentials where instance_id = $1 and group_id = $2")
            .bind(instance_id)
            .bind(group_id)
            .fetch_all(tx.conn())
            .await?;
    for (client_id,) in cascaded {
        tx.touch_device(instance_id, &client_id);
    }
    let deleted = sqlx::query("delete from group_ids where instance_id = $1 and group_id = $2")
        .bind(instance_id)
        .bind(group_id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(deleted > 0)
}
