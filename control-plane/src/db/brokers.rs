//! Broker nodes: their credentials (SHA-256 of the secret) and what their heartbeats report.

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::sync::Heartbeat;
use sqlx::{FromRow, PgConnection, PgPool};

use super::unique_violation;
use crate::api::brokers::BrokerNode;
use crate::error::ApiResult;

/// A broker node as ListBrokers shows it, and what its state and link are derived from.
#[derive(FromRow)]
pub struct BrokerRow {
    #[sqlx(flatten)]
    pub node: BrokerNode,
    /// In a cluster: whether the broker's NATS link was up at its last heartbeat.
    pub cluster_link: Option<bool>,
    /// No heartbeat for the `silent_after` given to `list`.
    pub silent: bool,
}

/// Returns the creation time; 409 when the id is taken.
pub async fn create(pool: &PgPool, id: &str, secret_sha256: &[u8], description: &str) -> ApiResult<DateTime<Utc>> {
    let (created_at,): (DateTime<Utc>,) = sqlx::query_as(
        "insert into broker_nodes (id, secret_sha256, description) values ($1, $2, $3) returning created_at",
    )
    .bind(id)
    .bind(secret_sha256)
    .bind(description)
    .fetch_one(pool)
    .await
    .map_err(|e| unique_violation(e, id))?;
    Ok(created_at)
}

/// Creates the node, or gives an existing one this secret (nodes configured at start-up).
pub async fn configure(pool: &PgPool, id: &str, secret_sha256: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into broker_nodes (id, secret_sha256, description) values ($1, $2, 'from broker_nodes')
         on conflict (id) do update set secret_sha256 = excluded.secret_sha256, updated_at = now()",
    )
    .bind(id)
    .bind(secret_sha256)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn secret_sha256(pool: &PgPool, id: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let row: Option<(Vec<u8>,)> = sqlx::query_as("select secret_sha256 from broker_nodes where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(h,)| h))
}

/// Every node. Silence is judged on the database clock, the one that stamped the heartbeats.
pub async fn list(pool: &PgPool, silent_after: Duration) -> Result<Vec<BrokerRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, description, boot_id, software_version, applied_version, applied_hash,
            last_error, last_heartbeat_at, started_at_ms, connections, subscriptions, messages_in_per_sec,
            messages_out_per_sec, cluster_link, created_at,
            coalesce(last_heartbeat_at < now() - make_interval(secs => $1), false) as silent
         from broker_nodes order by id",
    )
    .bind(silent_after.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// A node heard from within `silent_after`, to run something once (TestRule, a SendMessage's rules):
/// the one with the newest configuration (so it has the rule as saved, when one has), then the one
/// heard from last.
pub async fn pick_live(pool: &PgPool, silent_after: Duration) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "select id from broker_nodes where last_heartbeat_at >= now() - make_interval(secs => $1)
         order by applied_version desc nulls last, last_heartbeat_at desc, id limit 1",
    )
    .bind(silent_after.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// Every node that sent a heartbeat within `silent_after`.
pub async fn live(pool: &PgPool, silent_after: Duration) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "select id from broker_nodes where last_heartbeat_at >= now() - make_interval(secs => $1) order by id",
    )
    .bind(silent_after.as_secs_f64())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Deletes the node and the channels it reported (cascade); false when there was none.
pub async fn delete(pool: &PgPool, id: &str) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("delete from broker_nodes where id = $1")
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

/// Records a heartbeat and the per-instance and per-rule figures it carries (`silent_after`: how long other
/// brokers' figures count); false when the node no longer exists.
pub async fn record_heartbeat(
    pool: &PgPool,
    node_id: &str,
    hb: &Heartbeat,
    silent_after: Duration,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if !observe_boot(&mut tx, node_id, &hb.boot_id).await? {
        return Ok(false);
    }
    // Counters arrive as u64; PostgreSQL has no unsigned type and no broker holds 2^63 clients.
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sqlx::query(
        "update broker_nodes set software_version = $2, applied_version = $3, applied_hash = $4,
            last_error = $5, connections = $6, subscriptions = $7, messages_in_per_sec = $8,
            messages_out_per_sec = $9, started_at_ms = $10, cluster_link = $11, last_heartbeat_at = now(),
            updated_at = now()
         where id = $1",
    )
    .bind(node_id)
    .bind(&hb.software_version)
    .bind(hb.applied_version)
    .bind(&hb.applied_hash)
    .bind(&hb.last_error)
    .bind(clamp(hb.connections))
    .bind(clamp(hb.subscriptions))
    .bind(hb.messages_in_per_sec)
    .bind(hb.messages_out_per_sec)
    .bind(hb.started_at_ms)
    .bind(hb.cluster_link)
    .execute(&mut *tx)
    .await?;
    super::usage::record(&mut tx, node_id, &hb.instances, silent_after).await?;
    super::rule_reports::record_stats(&mut tx, node_id, &hb.rules).await?;
    tx.commit().await?;
    Ok(true)
}

/// Records the node's boot id; when it changed, the node restarted and every channel it reported
/// before is gone. Locks the node row, so heartbeats and event batches of one node apply in turn.
/// False when the node no longer exists.
pub(super) async fn observe_boot(conn: &mut PgConnection, node_id: &str, boot_id: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(Option<String>,)> = sqlx::query_as("select boot_id from broker_nodes where id = $1 for update")
        .bind(node_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((current,)) = row else {
        return Ok(false);
    };
    if current.as_deref() != Some(boot_id) {
        let dropped = sqlx::query("delete from client_channels where node_id = $1")
            .bind(node_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        sqlx::query("update broker_nodes set boot_id = $2, updated_at = now() where id = $1")
            .bind(node_id)
            .bind(boot_id)
            .execute(&mut *conn)
            .await?;
        tracing::info!(node = node_id, boot_id, dropped, "broker node (re)started");
    }
    Ok(true)
}

/// Marks (or clears) that the node's next snapshot poll gets the full snapshot. Marking wakes the
/// waiting polls (on every replica), so the node's poll answers without waiting for a change.
pub async fn set_full_snapshot_due(pool: &PgPool, node_id: &str, due: bool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("update broker_nodes set full_snapshot_due = $2, updated_at = now() where id = $1")
        .bind(node_id)
        .bind(due)
        .execute(&mut *tx)
        .await?;
    if due {
        sqlx::query("select pg_notify($1, (select version from config_version)::text)")
            .bind(super::CONFIG_CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// The current configuration version, and whether the node's next snapshot poll gets the full
/// snapshot: what a snapshot poll reads each time it wakes, in one query.
pub async fn poll_state(pool: &PgPool, node_id: &str) -> Result<(i64, bool), sqlx::Error> {
    sqlx::query_as(
        "select v.version, coalesce((select full_snapshot_due from broker_nodes where id = $1), false)
         from config_version v",
    )
    .bind(node_id)
    .fetch_one(pool)
    .await
}
