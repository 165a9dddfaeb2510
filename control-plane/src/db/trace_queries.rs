//! Message-trace queries: which brokers were asked (`trace_queries`, one row each) and their
//! answers, stored as they come so any replica can merge them. An answer notifies the channel
//! that also carries rule-test answers: waiters look again.

use common::sync::TraceAnswer;
use sqlx::PgPool;
use sqlx::types::Json;

/// Records that `nodes` are asked.
pub async fn start(pool: &PgPool, request_id: &str, nodes: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("insert into trace_queries (request_id, node_id) select $1, unnest($2::text[])")
        .bind(request_id)
        .bind(nodes)
        .execute(pool)
        .await?;
    Ok(())
}

/// Stores a broker's answer; false when that node was not asked (or answered already).
pub async fn finish(pool: &PgPool, node_id: &str, answer: &TraceAnswer) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let updated =
        sqlx::query("update trace_queries set answer = $3 where request_id = $1 and node_id = $2 and answer is null")
            .bind(&answer.request_id)
            .bind(node_id)
            .bind(Json(answer))
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if updated > 0 {
        sqlx::query("select pg_notify($1, $2)")
            .bind(super::RULE_TESTS_CHANNEL)
            .bind(&answer.request_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(updated > 0)
}

/// The answers so far and the nodes still to answer.
pub async fn answers(pool: &PgPool, request_id: &str) -> Result<(Vec<TraceAnswer>, Vec<String>), sqlx::Error> {
    let rows: Vec<(String, Option<Json<TraceAnswer>>)> =
        sqlx::query_as("select node_id, answer from trace_queries where request_id = $1 order by node_id")
            .bind(request_id)
            .fetch_all(pool)
            .await?;
    let mut answers = Vec::new();
    let mut waiting = Vec::new();
    for (node, answer) in rows {
        match answer {
            Some(Json(a)) => answers.push(a),
            None => waiting.push(node),
        }
    }
    Ok((answers, waiting))
}

/// Housekeeping: queries older than `max_age` (their callers gave up long ago).
pub async fn purge_older_than(pool: &PgPool, max_age: std::time::Duration) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("delete from trace_queries where created_at < now() - make_interval(secs => $1)")
            .bind(max_age.as_secs_f64())
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
