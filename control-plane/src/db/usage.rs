//! Per-instance usage the brokers report in their heartbeats: each broker's latest figures per
//! instance, the instance's totals across the brokers heard from lately, and one point per minute of
//! those totals. Offline messages are the largest report rather than the sum: the brokers of a cluster
//! each report the cluster's shared figure.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::sync::InstanceUsage;
use sqlx::{FromRow, PgConnection, PgPool};

/// The history kept per instance.
pub const HISTORY: Duration = Duration::from_secs(24 * 3600);

/// An instance's totals across brokers.
#[derive(Debug, Default, FromRow)]
pub struct Totals {
    pub connections: i64,
    pub subscriptions: i64,
    pub messages_in_per_sec: f64,
    pub messages_out_per_sec: f64,
    pub offline_messages: i64,
    /// Brokers whose report counted.
    pub brokers: i64,
}

/// One minute of history: the highest totals seen in that minute.
#[derive(Debug, FromRow)]
pub struct Point {
    pub minute: DateTime<Utc>,
    pub connections: i64,
    pub subscriptions: i64,
    pub messages_in_per_sec: f64,
    pub messages_out_per_sec: f64,
    pub offline_messages: i64,
}

/// The totals of the instances `$1`, summed over the brokers heard from within `$2` seconds.
macro_rules! totals_sql {
    () => {
        "select u.instance_id, sum(u.connections)::bigint as connections,
        sum(u.subscriptions)::bigint as subscriptions, sum(u.messages_in_per_sec) as messages_in_per_sec,
        sum(u.messages_out_per_sec) as messages_out_per_sec, max(u.offline_messages) as offline_messages,
        count(*) as brokers
    from broker_instance_usage u join broker_nodes n on n.id = u.node_id
    where u.instance_id = any($1) and n.last_heartbeat_at >= now() - make_interval(secs => $2)
    group by u.instance_id"
    };
}

/// Replaces the node's figures with those of its heartbeat (in the heartbeat's transaction, after the
/// node's `last_heartbeat_at` was set), then raises the current minute's history point of each
/// instance it reported, or reported before, to the instance's new totals.
pub(super) async fn record(
    conn: &mut PgConnection,
    node_id: &str,
    instances: &[InstanceUsage],
    silent_after: Duration,
) -> Result<(), sqlx::Error> {
    // Counters arrive as u64; PostgreSQL has no unsigned type and no broker holds 2^63 of anything.
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    // One row per instance (the last report wins should a broker name one twice).
    let reported: BTreeMap<&str, &InstanceUsage> = instances.iter().map(|i| (i.instance_id.as_str(), i)).collect();
    let ids: Vec<&str> = reported.keys().copied().collect();
    let column = |f: &dyn Fn(&InstanceUsage) -> i64| reported.values().map(|i| f(i)).collect::<Vec<i64>>();
    let rate = |f: &dyn Fn(&InstanceUsage) -> f64| reported.values().map(|i| f(i)).collect::<Vec<f64>>();
    sqlx::query(
        "insert into broker_instance_usage (node_id, instance_id, connections, subscriptions,
            messages_in_per_sec, messages_out_per_sec, offline_messages)
         select $1, * from unnest($2::text[], $3::bigint[], $4::bigint[], $5::float8[], $6::float8[], $7::bigint[])
         on conflict (node_id, instance_id) do update set connections = excluded.connections,
            subscriptions = excluded.subscriptions, messages_in_per_sec = excluded.messages_in_per_sec,
            messages_out_per_sec = excluded.messages_out_per_sec, offline_messages = excluded.offline_messages,
            updated_at = now()",
    )
    .bind(node_id)
    .bind(&ids)
    .bind(column(&|i| clamp(i.connections)))
    .bind(column(&|i| clamp(i.subscriptions)))
    .bind(rate(&|i| i.messages_in_per_sec))
    .bind(rate(&|i| i.messages_out_per_sec))
    .bind(column(&|i| clamp(i.offline_messages)))
    .execute(&mut *conn)
    .await?;
    // Instances the node no longer reports (no client left there) stop counting on it.
    let previous: Vec<(String,)> = sqlx::query_as(
        "delete from broker_instance_usage where node_id = $1 and instance_id <> all($2) returning instance_id",
    )
    .bind(node_id)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut touched: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    touched.extend(previous.into_iter().map(|(id,)| id));
    touched.sort();
    touched.dedup();
    if touched.is_empty() {
        return Ok(());
    }
    // In instance order, so that concurrent heartbeats of several brokers lock the shared history
    // rows in the same order (no deadlock).
    sqlx::query(concat!(
        "insert into instance_usage_history (instance_id, minute, connections, subscriptions,
            messages_in_per_sec, messages_out_per_sec, offline_messages)
         select instance_id, date_trunc('minute', now()), connections, subscriptions, messages_in_per_sec,
            messages_out_per_sec, offline_messages
         from (",
        totals_sql!(),
        ") t order by instance_id
         on conflict (instance_id, minute) do update set
            connections = greatest(instance_usage_history.connections, excluded.connections),
            subscriptions = greatest(instance_usage_history.subscriptions, excluded.subscriptions),
            messages_in_per_sec = greatest(instance_usage_history.messages_in_per_sec, excluded.messages_in_per_sec),
            messages_out_per_sec = greatest(instance_usage_history.messages_out_per_sec, excluded.messages_out_per_sec),
            offline_messages = greatest(instance_usage_history.offline_messages, excluded.offline_messages),
            updated_at = now()"
    ))
    .bind(&touched)
    .bind(silent_after.as_secs_f64())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The instance's totals now (zero when no live broker reports it).
pub async fn totals(pool: &PgPool, instance_id: &str, silent_after: Duration) -> Result<Totals, sqlx::Error> {
    let row: Option<(String, i64, i64, f64, f64, i64, i64)> = sqlx::query_as(totals_sql!())
        .bind(vec![instance_id])
        .bind(silent_after.as_secs_f64())
        .fetch_optional(pool)
        .await?;
    Ok(row
        .map(
            |(_, connections, subscriptions, messages_in_per_sec, messages_out_per_sec, offline_messages, brokers)| {
                Totals {
                    connections,
                    subscriptions,
                    messages_in_per_sec,
                    messages_out_per_sec,
                    offline_messages,
                    brokers,
                }
            },
        )
        .unwrap_or_default())
}

/// The instance's points of the last `minutes` minutes, oldest first.
pub async fn history(pool: &PgPool, instance_id: &str, minutes: u32) -> Result<Vec<Point>, sqlx::Error> {
    sqlx::query_as(
        "select minute, connections, subscriptions, messages_in_per_sec, messages_out_per_sec, offline_messages
         from instance_usage_history
         where instance_id = $1 and minute > date_trunc('minute', now()) - make_interval(mins => $2)
         order by minute",
    )
    .bind(instance_id)
    .bind(i32::try_from(minutes).unwrap_or(i32::MAX))
    .fetch_all(pool)
    .await
}

/// Housekeeping: history points past `HISTORY` (also those of deleted instances), and the figures of
/// brokers not heard from for `stale_after` (a broker that comes back replaces them anyway).
pub async fn purge(pool: &PgPool, stale_after: Duration) -> Result<u64, sqlx::Error> {
    let points = sqlx::query("delete from instance_usage_history where minute < now() - make_interval(secs => $1)")
        .bind(HISTORY.as_secs_f64())
        .execute(pool)
        .await?
        .rows_affected();
    let reports = sqlx::query("delete from broker_instance_usage where updated_at < now() - make_interval(secs => $1)")
        .bind(stale_after.as_secs_f64())
        .execute(pool)
        .await?
        .rows_affected();
    Ok(points + reports)
}
