//! Rules of an instance (source and target without their secrets; the secrets sealed apart).

use chrono::{DateTime, Utc};
use common::rules::{OutboxLimits, RuleSource, RuleTarget};
use sqlx::types::Json;
use sqlx::{FromRow, PgPool};

use super::ConfigTx;

#[derive(FromRow)]
pub struct RuleRow {
    pub instance_id: String,
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub source: Json<RuleSource>,
    pub target: Option<Json<RuleTarget>>,
    pub outbox: Json<OutboxLimits>,
    /// API paths of the secrets that are set.
    pub secret_fields: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A rule with its sealed secrets, as the snapshot and an update need it.
#[derive(FromRow)]
pub struct SealedRule {
    #[sqlx(flatten)]
    pub rule: RuleRow,
    pub secrets_enc: Option<Vec<u8>>,
}

/// What is written on create and update.
pub struct RuleWrite<'a> {
    pub name: &'a str,
    pub enabled: bool,
    pub kind: &'a str,
    pub source: &'a RuleSource,
    pub target: Option<&'a RuleTarget>,
    pub outbox: &'a OutboxLimits,
    pub secrets_enc: Option<&'a [u8]>,
    pub secret_fields: &'a [String],
}

const COLUMNS: &str = "instance_id, id, name, enabled, source, target, outbox, secret_fields, created_at, updated_at";

/// Rules of the instance, counted inside the transaction that locked it (quota checks).
pub async fn count(tx: &mut ConfigTx, instance_id: &str) -> Result<i64, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as("select count(*) from rules where instance_id = $1")
        .bind(instance_id)
        .fetch_one(tx.conn())
        .await?;
    Ok(count)
}

/// The instance's parent topics and group IDs, which rules refer to, read in the locking transaction.
pub async fn names(tx: &mut ConfigTx, instance_id: &str) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    let (topics, groups): (Vec<String>, Vec<String>) = sqlx::query_as(
        "select coalesce((select array_agg(name) from parent_topics where instance_id = $1), '{}'),
                coalesce((select array_agg(group_id) from group_ids where instance_id = $1), '{}')",
    )
    .bind(instance_id)
    .fetch_one(tx.conn())
    .await?;
    Ok((topics, groups))
}

pub async fn insert(tx: &mut ConfigTx, instance_id: &str, id: &str, w: &RuleWrite<'_>) -> Result<RuleRow, sqlx::Error> {
    write(
        tx,
        "insert into rules (instance_id, id, name, enabled, kind, source, target, outbox, secrets_enc, secret_fields)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        instance_id,
        id,
        w,
    )
    .await
}

/// The rule and its sealed secrets, locked for an update; none when the instance has no such rule.
pub async fn lock(tx: &mut ConfigTx, instance_id: &str, id: &str) -> Result<Option<SealedRule>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS}, secrets_enc from rules where instance_id = $1 and id = $2 for update"
    )))
    .bind(instance_id)
    .bind(id)
    .fetch_optional(tx.conn())
    .await
}

pub async fn update(tx: &mut ConfigTx, instance_id: &str, id: &str, w: &RuleWrite<'_>) -> Result<RuleRow, sqlx::Error> {
    write(
        tx,
        "update rules set name = $3, enabled = $4, kind = $5, source = $6, target = $7, outbox = $8,
            secrets_enc = $9, secret_fields = $10, updated_at = now()
         where instance_id = $1 and id = $2",
        instance_id,
        id,
        w,
    )
    .await
}

/// Runs `statement` (an insert or update taking the instance and rule ids as $1 and $2 and the
/// write's fields as $3 to $10) and returns the rule as stored.
async fn write(
    tx: &mut ConfigTx,
    statement: &str,
    instance_id: &str,
    id: &str,
    w: &RuleWrite<'_>,
) -> Result<RuleRow, sqlx::Error> {
    tx.touch(instance_id);
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{statement} returning {COLUMNS}")))
        .bind(instance_id)
        .bind(id)
        .bind(w.name)
        .bind(w.enabled)
        .bind(w.kind)
        .bind(Json(w.source))
        .bind(w.target.map(Json))
        .bind(Json(w.outbox))
        .bind(w.secrets_enc)
        .bind(w.secret_fields)
        .fetch_one(tx.conn())
        .await
}

/// Enables or disables; none when the instance has no such rule.
pub async fn set_enabled(
    tx: &mut ConfigTx,
    instance_id: &str,
    id: &str,
    enabled: bool,
) -> Result<Option<RuleRow>, sqlx::Error> {
    tx.touch(instance_id);
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update rules set enabled = $3, updated_at = now() where instance_id = $1 and id = $2 returning {COLUMNS}"
    )))
    .bind(instance_id)
    .bind(id)
    .bind(enabled)
    .fetch_optional(tx.conn())
    .await
}

/// Deletes the rule, its figures, dead letters and tests (cascade); false when there was none.
pub async fn delete(tx: &mut ConfigTx, instance_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    tx.touch(instance_id);
    let deleted = sqlx::query("delete from rules where instance_id = $1 and id = $2")
        .bind(instance_id)
        .bind(id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

pub async fn get(pool: &PgPool, instance_id: &str, id: &str) -> Result<Option<RuleRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from rules where instance_id = $1 and id = $2"
    )))
    .bind(instance_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The instance's rules, oldest first.
pub async fn list(pool: &PgPool, instance_id: &str) -> Result<Vec<RuleRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from rules where instance_id = $1 order by created_at, id"
    )))
    .bind(instance_id)
    .fetch_all(pool)
    .await
}

/// The rules of the instances `instance_ids`, by instance and age, with their sealed secrets (the
/// snapshot).
pub async fn sealed(pool: &PgPool, instance_ids: &[String]) -> Result<Vec<SealedRule>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS}, secrets_enc from rules where instance_id = any($1) order by instance_id, created_at, id"
    )))
    .bind(instance_ids)
    .fetch_all(pool)
    .await
}

/// Whether the instance has the rule.
pub async fn exists(pool: &PgPool, instance_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let (exists,): (bool,) = sqlx::query_as("select exists(select 1 from rules where instance_id = $1 and id = $2)")
        .bind(instance_id)
        .bind(id)
        .fetch_one(pool)
        .await?;
    Ok(exists)
}
