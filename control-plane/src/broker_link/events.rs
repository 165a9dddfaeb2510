//! `POST events`: client status events (SPEC 3.8) and subscription changes. They keep
//! `client_channels` (the live connections behind QuerySessionByClientId) current, and
//! connect/disconnect/tcpclean are appended to `client_events` (the trace history).

use axum::extract::State;
use axum::http::StatusCode;
use common::sync::{ClientEvent, ClientEventType, EventBatch};
use sqlx::PgConnection;

use crate::auth::node::Node;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn event_name(t: ClientEventType) -> &'static str {
    match t {
        ClientEventType::Connect => "connect",
        ClientEventType::Disconnect => "disconnect",
        ClientEventType::Tcpclean => "tcpclean",
        ClientEventType::Subscribe => "subscribe",
        ClientEventType::Unsubscribe => "unsubscribe",
    }
}

pub async fn events(
    State(state): State<AppState>,
    node: Node,
    ApiJson(batch): ApiJson<EventBatch>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    super::observe_boot(&mut tx, &node.id, &batch.boot_id).await?;
    // In order: a connect, subscribe and tcpclean of one channel may share a batch.
    for e in &batch.events {
        apply_to_channels(&mut tx, &node.id, e).await?;
    }
    append_history(&mut tx, &node.id, &batch.events).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
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
        // DISCONNECT is followed by tcpclean, which is what ends the channel (SPEC 3.8).
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

/// One statement for the whole batch (connect storms send thousands).
async fn append_history(conn: &mut PgConnection, node_id: &str, events: &[ClientEvent]) -> Result<(), sqlx::Error> {
    let history: Vec<&ClientEvent> = events
        .iter()
        .filter(|e| {
            matches!(
                e.event_type,
                ClientEventType::Connect | ClientEventType::Disconnect | ClientEventType::Tcpclean
            )
        })
        .collect();
    if history.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&ClientEvent) -> String| history.iter().map(|e| f(e)).collect::<Vec<String>>();
    sqlx::query(
        "insert into client_events (node_id, instance_id, client_id, channel_id, event_type, client_ip, time_ms)
         select $1, i, c, ch, t, ip, ms
         from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[]) as u(i, c, ch, t, ip, ms)",
    )
    .bind(node_id)
    .bind(col(|e| e.instance_id.clone()))
    .bind(col(|e| e.client_id.clone()))
    .bind(col(|e| e.channel_id.clone()))
    .bind(col(|e| event_name(e.event_type).to_string()))
    .bind(col(|e| e.client_ip.clone()))
    .bind(history.iter().map(|e| e.time).collect::<Vec<i64>>())
    .execute(conn)
    .await?;
    Ok(())
}
