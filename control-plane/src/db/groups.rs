//! Group IDs of an instance.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};

use super::{ConfigTx, unique_violation};
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
    tx.touch(instance_id);
    sqlx::query_as(
        "insert into group_ids (instance_id, group_id, description) values ($1, $2, $3)
         returning group_id, description, created_at, updated_at",
    )
    .bind(instance_id)
    .bind(group_id)
    .bind(description)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| unique_violation(e, group_id))
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

/// Deletes the group and its device credentials (cascade); false when the instance has no such group.
pub async fn delete(tx: &mut ConfigTx, instance_id: &str, group_id: &str) -> Result<bool, sqlx::Error> {
    tx.touch(instance_id);
    let deleted = sqlx::query("delete from group_ids where instance_id = $1 and group_id = $2")
        .bind(instance_id)
        .bind(group_id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(deleted > 0)
}
