//! Parent topics of an instance.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};

use super::{ConfigTx, unique_violation};
use crate::error::ApiResult;

#[derive(FromRow)]
pub struct TopicRow {
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Parent topics of the instance, counted inside the transaction that locked it (quota checks).
pub async fn count(tx: &mut ConfigTx, instance_id: &str) -> Result<i64, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as("select count(*) from parent_topics where instance_id = $1")
        .bind(instance_id)
        .fetch_one(tx.conn())
        .await?;
    Ok(count)
}

/// 409 when the instance has the topic already.
pub async fn create(tx: &mut ConfigTx, instance_id: &str, name: &str, description: &str) -> ApiResult<TopicRow> {
    tx.touch(instance_id);
    sqlx::query_as(
        "insert into parent_topics (instance_id, name, description) values ($1, $2, $3)
         returning name, description, created_at, updated_at",
    )
    .bind(instance_id)
    .bind(name)
    .bind(description)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| unique_violation(e, name))
}

pub async fn list(pool: &PgPool, instance_id: &str) -> Result<Vec<TopicRow>, sqlx::Error> {
    sqlx::query_as(
        "select name, description, created_at, updated_at from parent_topics
         where instance_id = $1 order by name",
    )
    .bind(instance_id)
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, instance_id: &str, name: &str) -> Result<Option<TopicRow>, sqlx::Error> {
    sqlx::query_as(
        "select name, description, created_at, updated_at from parent_topics
         where instance_id = $1 and name = $2",
    )
    .bind(instance_id)
    .bind(name)
    .fetch_optional(pool)
    .await
}

pub async fn exists(pool: &PgPool, instance_id: &str, name: &str) -> Result<bool, sqlx::Error> {
    let (exists,): (bool,) =
        sqlx::query_as("select exists(select 1 from parent_topics where instance_id = $1 and name = $2)")
            .bind(instance_id)
            .bind(name)
            .fetch_one(pool)
            .await?;
    Ok(exists)
}

/// False when the instance has no such topic.
pub async fn delete(tx: &mut ConfigTx, instance_id: &str, name: &str) -> Result<bool, sqlx::Error> {
    tx.touch(instance_id);
    let deleted = sqlx::query("delete from parent_topics where instance_id = $1 and name = $2")
        .bind(instance_id)
        .bind(name)
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(deleted > 0)
}
