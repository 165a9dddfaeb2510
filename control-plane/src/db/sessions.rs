//! Live client connections as the brokers report them (`client_channels`), behind the session
//! queries; each event batch also extends the trace history (`events`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::sync::{ClientEvent, ClientEventType, EventBatch};
use sqlx::{FromRow, PgConnection, PgPool};

use super::{brokers, events};

#[derive(FromRow)]
pub struct ChannelRow {
    pub client_id: String,
    pub channel_id: String,
    pub node_id: String,
    pub client_ip: String,
    pub connected_at: DateTime<Utc>,
    pub subscriptions: Vec<String>,
}

/// The channels of these clients, oldest first. Channels of nodes silent for `silent_after` are left
/// out: a broker that stopped reporting is presumed gone with its connections.
pub async fn live_channels(
    pool: &PgPool,
    instance_id: &str,
    client_ids: &[String],
    silent_after: Duration,
) -> Result<Vec<ChannelRow>, sqlx::Error> {
    sqlx::query_as(
        "select c.client_id, c.channel_id, c.node_id, c.client_ip, c.connected_at, c.subscriptions
         from client_channels c join broker_nodes n on n.id = c.node_id
         where c.instance_id = $1 and c.client_id = any($2)
           and (n.last_heartbeat_at is null or n.last_heartbeat_at >= now() - make_interval(secs => $3))
         order by c.connected_at, c.channel_id",
    )
    .bind(instance_id)
    .bind(client_ids)
    .bind(silent_after.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// Applies a node's event batch to its channels and appends it to the history, in one transaction;
/// false when the node no longer exists.
pub async fn record_events(pool: &PgPool, node_id: &str, batch: &EventBatch) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if !brokers::observe_boot(&mut tx, node_id, &batch.boot_id).await? {
        return Ok(false);
    }
    // In order: a connect, subscribe and tcpclean of one channel may share a batch.
    for e in &batch.events {
        apply_to_channels(&mut tx, node_id, e).await?;
    }
    events::append(&mut tx, node_id, &batch.events).await?;
    tx.commit().await?;
    Ok(true)
}

async fn apply_to_channels(conn: &mut PgConnection, node_id: &str, e: &ClientEvent) -> Result<(), sqlx::Error> {
    let query = match e.event_type {
        ClientEventType::Connect => sqlx::query(
            "insert into client_channels (node_id, channel_id, instance_id, client_id, client_ip, connected_at)
             values ($1, $2, $3, $4, $5, to_timestamp($6::float8 / 1000))
             on conflict (node_id, channel_id) do update set instance_id = excluded.instance_id,
                client_id = excluded.client_id, client_ip = excluded.client_ip,
                connected_at = excluded.connected_at, subscriptions = '{}', updated_at = now()",
        )
        .bind(node_id)
        .bind(&e.channel_id)
        .bind(&e.instance_id)
        .bind(&e.client_id)
        .bind(&e.client_ip)
        .bind(e.time),
        // DISCONNECT is followed by tcpclean, which is what ends the channel (docs/spec.md 3.8).
        ClientEventType::Disconnect => return Ok(()),
        ClientEventType::Tcpclean => {
            sqlx::query("delete from client_channels where node_id = $1 and channel_id = $2")
                .bind(node_id)
                .bind(&e.channel_id)
        }
        // Appends the filters not held yet, keeping the subscription order.
        ClientEventType::Subscribe => sqlx::query(
            "update client_channels set subscriptions = subscriptions
                || array(select distinct t from unnest($3::text[]) t where t <> all(subscriptions)),
                updated_at = now()
             where node_id = $1 and channel_id = $2",
        )
        .bind(node_id)
        .bind(&e.channel_id)
        .bind(&e.topics),
        ClientEventType::Unsubscribe => sqlx::query(
            "update client_channels set subscriptions =
                array(select s from unnest(subscriptions) with ordinality u(s, n) where s <> all($3::text[]) order by n),
                updated_at = now()
             where node_id = $1 and channel_id = $2",
        )
        .bind(node_id)
        .bind(&e.channel_id)
        .bind(&e.topics),
    };
    query.execute(conn).await?;
    Ok(())
}
