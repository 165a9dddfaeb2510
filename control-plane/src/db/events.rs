//! Client event history for trace (`client_events`): connect, disconnect and tcpclean (with why the
//! connection ended, and refused CONNECTs) as brokers reported them.

use std::time::Duration;

use common::sync::{ClientEvent, ClientEventType};
use sqlx::{FromRow, PgConnection, PgPool};

#[derive(FromRow)]
pub struct EventRow {
    pub client_id: String,
    pub event_type: String,
    pub time_ms: i64,
    pub channel_id: String,
    pub client_ip: String,
    pub node_id: String,
    /// Why the connection ended (`tcpclean`), when the broker said.
    pub reason: Option<String>,
}

/// Which of a client's events, `limit` from `offset`, newest first.
pub struct EventQuery<'a> {
    pub instance_id: &'a str,
    pub client_id: &'a str,
    /// Only events at or after this epoch ms.
    pub start_ms: Option<i64>,
    /// Only events before this epoch ms.
    pub end_ms: Option<i64>,
    pub limit: i64,
    pub offset: i64,
    /// Oldest first (the device trace's default) instead of newest first.
    pub oldest_first: bool,
}

/// The name an event type is stored under (and trace shows).
fn stored_name(t: ClientEventType) -> Option<&'static str> {
    match t {
        ClientEventType::Connect => Some("connect"),
        ClientEventType::Disconnect => Some("disconnect"),
        ClientEventType::Tcpclean => Some("tcpclean"),
        // Subscription changes update the live channels only; they are not history.
        ClientEventType::Subscribe | ClientEventType::Unsubscribe => None,
    }
}

/// Appends the batch's history events in one statement (connect storms send thousands).
pub(super) async fn append(conn: &mut PgConnection, node_id: &str, events: &[ClientEvent]) -> Result<(), sqlx::Error> {
    let history: Vec<(&ClientEvent, &str)> = events
        .iter()
        .filter_map(|e| stored_name(e.event_type).map(|name| (e, name)))
        .collect();
    if history.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&(&ClientEvent, &str)) -> String| history.iter().map(f).collect::<Vec<String>>();
    sqlx::query(
        "insert into client_events (node_id, instance_id, client_id, channel_id, event_type, client_ip, time_ms, reason)
         select $1, i, c, ch, t, ip, ms, r
         from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::text[])
           as u(i, c, ch, t, ip, ms, r)",
    )
    .bind(node_id)
    .bind(col(|(e, _)| e.instance_id.clone()))
    .bind(col(|(e, _)| e.client_id.clone()))
    .bind(col(|(e, _)| e.channel_id.clone()))
    .bind(col(|(_, name)| name.to_string()))
    .bind(col(|(e, _)| e.client_ip.clone()))
    .bind(history.iter().map(|(e, _)| e.time).collect::<Vec<i64>>())
    .bind(
        history
            .iter()
            .map(|(e, _)| e.reason.map(|r| r.as_str()))
            .collect::<Vec<Option<&str>>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One page of matching events and how many match in all.
pub async fn page(pool: &PgPool, q: &EventQuery<'_>) -> Result<(Vec<EventRow>, i64), sqlx::Error> {
    let filter = "from client_events where instance_id = $1 and client_id = $2
        and ($3::int8 is null or time_ms >= $3) and ($4::int8 is null or time_ms < $4)";
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("select count(*) {filter}")))
        .bind(q.instance_id)
        .bind(q.client_id)
        .bind(q.start_ms)
        .bind(q.end_ms)
        .fetch_one(pool)
        .await?;
    let order = if q.oldest_first {
        "time_ms, id"
    } else {
        "time_ms desc, id desc"
    };
    let events = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select client_id, event_type, time_ms, channel_id, client_ip, node_id, reason {filter}
         order by {order} limit $5 offset $6"
    )))
    .bind(q.instance_id)
    .bind(q.client_id)
    .bind(q.start_ms)
    .bind(q.end_ms)
    .bind(q.limit)
    .bind(q.offset)
    .fetch_all(pool)
    .await?;
    Ok((events, total))
}

/// Deletes events recorded more than `max_age` ago.
pub async fn purge_older_than(pool: &PgPool, max_age: Duration) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("delete from client_events where created_at < now() - make_interval(secs => $1)")
            .bind(max_age.as_secs_f64())
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
