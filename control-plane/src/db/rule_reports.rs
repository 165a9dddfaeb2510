//! What brokers report about rules: per-rule figures from heartbeats (each broker's latest, summed
//! per rule), dead letters (the latest `DEAD_LETTERS_KEPT` per rule), and TestRule requests with the
//! answer of the broker that ran them.

use std::collections::BTreeMap;

use common::rules::{DeadLetter, RuleStats, TestResult};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};

use crate::rules::model::RuleStatus;

/// Dead letters kept per rule; older ones are deleted as new ones arrive.
pub const DEAD_LETTERS_KEPT: i64 = 100;

/// A rule's figures summed over the brokers, with its id.
#[derive(FromRow)]
struct StatsRow {
    rule_id: String,
    #[sqlx(flatten)]
    status: RuleStatus,
}

#[derive(Debug, FromRow)]
pub struct DeadLetterRow {
    pub node_id: String,
    pub at_ms: i64,
    pub status: Option<i32>,
    pub error: String,
    pub topic: Option<String>,
    pub client_id: Option<String>,
    pub msg_id: Option<String>,
    pub body_head: Option<String>,
}

/// Replaces the node's figures with those of its heartbeat (in the heartbeat's transaction). Rules
/// that no longer exist, or that are not in the instance the broker names, are skipped: a broker
/// may report a rule deleted since its last snapshot.
pub(super) async fn record_stats(
    conn: &mut PgConnection,
    node_id: &str,
    stats: &[RuleStats],
) -> Result<(), sqlx::Error> {
    // Counters arrive as u64; PostgreSQL has no unsigned type.
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    // One row per rule (the last report wins should a broker name one twice).
    let reported: BTreeMap<&str, &RuleStats> = stats.iter().map(|s| (s.rule_id.as_str(), s)).collect();
    let ids: Vec<&str> = reported.keys().copied().collect();
    let col = |f: &dyn Fn(&RuleStats) -> i64| reported.values().map(|s| f(s)).collect::<Vec<i64>>();
    // Everything of the node goes first: a rule it stopped reporting, or now names under another
    // instance (then skipped below), must not keep its old figures.
    sqlx::query("delete from broker_rule_stats where node_id = $1")
        .bind(node_id)
        .execute(&mut *conn)
        .await?;
    if ids.is_empty() {
        return Ok(());
    }
    let instances: Vec<&str> = reported.values().map(|s| s.instance_id.as_str()).collect();
    let overflowing: Vec<bool> = reported.values().map(|s| s.overflowing).collect();
    let last_error: Vec<Option<&str>> = reported.values().map(|s| s.last_error.as_deref()).collect();
    let last_error_at: Vec<Option<i64>> = reported.values().map(|s| s.last_error_at_ms).collect();
    sqlx::query(
        "insert into broker_rule_stats (node_id, rule_id, matched, delivered, failed, dropped, dead_lettered,
            queued, queued_bytes, overflowing, last_error, last_error_at_ms)
         select $1, s.rule_id, s.matched, s.delivered, s.failed, s.dropped, s.dead_lettered, s.queued,
            s.queued_bytes, s.overflowing, left(s.last_error, 1024), s.last_error_at_ms
         from unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],
                $9::bigint[], $10::bigint[], $11::bool[], $12::text[], $13::bigint[])
            as s(rule_id, instance_id, matched, delivered, failed, dropped, dead_lettered, queued, queued_bytes,
                 overflowing, last_error, last_error_at_ms)
         join rules r on r.id = s.rule_id and r.instance_id = s.instance_id
         order by s.rule_id",
    )
    .bind(node_id)
    .bind(&ids)
    .bind(&instances)
    .bind(col(&|s| clamp(s.matched)))
    .bind(col(&|s| clamp(s.delivered)))
    .bind(col(&|s| clamp(s.failed)))
    .bind(col(&|s| clamp(s.dropped)))
    .bind(col(&|s| clamp(s.dead_lettered)))
    .bind(col(&|s| clamp(s.queued)))
    .bind(col(&|s| clamp(s.queued_bytes)))
    .bind(&overflowing)
    .bind(&last_error)
    .bind(&last_error_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The figures of the rules `ids`, summed over the brokers; the last error is the latest any
/// broker reported.
pub async fn stats(pool: &PgPool, ids: &[String]) -> Result<BTreeMap<String, RuleStatus>, sqlx::Error> {
    let rows: Vec<StatsRow> = sqlx::query_as(
        "select rule_id, sum(matched)::bigint as matched, sum(delivered)::bigint as delivered,
            sum(failed)::bigint as failed, sum(dropped)::bigint as dropped,
            sum(dead_lettered)::bigint as dead_lettered, sum(queued)::bigint as queued,
            sum(queued_bytes)::bigint as queued_bytes, bool_or(overflowing) as overflowing,
            (array_agg(last_error order by last_error_at_ms desc nulls last))[1] as last_error,
            timestamptz 'epoch' + max(last_error_at_ms) * interval '1 millisecond' as last_error_at,
            count(*) as reporting_brokers
         from broker_rule_stats where rule_id = any($1) group by rule_id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.rule_id, r.status)).collect())
}

/// Stores the letters of rules that exist (others were deleted meanwhile) and keeps the latest
/// `DEAD_LETTERS_KEPT` of each rule; returns how many were stored.
pub async fn add_dead_letters(pool: &PgPool, node_id: &str, letters: &[DeadLetter]) -> Result<u64, sqlx::Error> {
    if letters.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let text = |f: &dyn Fn(&DeadLetter) -> Option<&str>| letters.iter().map(f).collect::<Vec<Option<&str>>>();
    let stored = sqlx::query(
        "insert into rule_dead_letters (rule_id, node_id, at_ms, status, error, topic, client_id, msg_id, body_head)
         select l.rule_id, $1, l.at_ms, l.status, l.error, l.topic, l.client_id, l.msg_id, l.body_head
         from unnest($2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::text[]) with ordinality
            as l(rule_id, instance_id, at_ms, status, error, topic, client_id, msg_id, body_head, n)
         join rules r on r.id = l.rule_id and r.instance_id = l.instance_id
         order by l.n",
    )
    .bind(node_id)
    .bind(text(&|l| Some(&l.rule_id)))
    .bind(text(&|l| Some(&l.instance_id)))
    .bind(letters.iter().map(|l| l.at_ms).collect::<Vec<i64>>())
    .bind(
        letters
            .iter()
            .map(|l| l.status.map(i32::from))
            .collect::<Vec<Option<i32>>>(),
    )
    .bind(text(&|l| Some(&l.error)))
    .bind(text(&|l| l.topic.as_deref()))
    .bind(text(&|l| l.client_id.as_deref()))
    .bind(text(&|l| l.msg_id.as_deref()))
    .bind(text(&|l| l.body_head.as_deref()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let mut rules: Vec<&str> = letters.iter().map(|l| l.rule_id.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    sqlx::query(
        "delete from rule_dead_letters d using (
            select seq, row_number() over (partition by rule_id order by seq desc) as n
            from rule_dead_letters where rule_id = any($1)) old
         where d.seq = old.seq and old.n > $2",
    )
    .bind(&rules)
    .bind(DEAD_LETTERS_KEPT)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(stored)
}

/// The rule's dead letters, newest first.
pub async fn dead_letters(pool: &PgPool, rule_id: &str) -> Result<Vec<DeadLetterRow>, sqlx::Error> {
    sqlx::query_as(
        "select node_id, at_ms, status, error, topic, client_id, msg_id, body_head from rule_dead_letters
         where rule_id = $1 order by seq desc limit $2",
    )
    .bind(rule_id)
    .bind(DEAD_LETTERS_KEPT)
    .fetch_all(pool)
    .await
}

/// Records that `node_id` was asked to test the rule.
pub async fn start_test(pool: &PgPool, request_id: &str, rule_id: &str, node_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("insert into rule_tests (request_id, rule_id, node_id) values ($1, $2, $3)")
        .bind(request_id)
        .bind(rule_id)
        .bind(node_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Notifies `RULE_TESTS_CHANNEL` with the request id, on commit.
async fn notify(conn: &mut PgConnection, request_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_notify($1, $2)")
        .bind(super::RULE_TESTS_CHANNEL)
        .bind(request_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a broker's answer; false when no test with that request id was asked of that node (an
/// answer after housekeeping removed the request, or from another node).
pub async fn finish_test(pool: &PgPool, node_id: &str, result: &TestResult) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "update rule_tests set result = $3, updated_at = now() where request_id = $1 and node_id = $2 and result is null",
    )
    .bind(&result.request_id)
    .bind(node_id)
    .bind(Json(result))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated > 0 {
        notify(&mut tx, &result.request_id).await?;
    }
    tx.commit().await?;
    Ok(updated > 0)
}

/// The answer to the test, once there is one.
pub async fn test_result(pool: &PgPool, request_id: &str) -> Result<Option<TestResult>, sqlx::Error> {
    let row: Option<(Option<Json<TestResult>>,)> =
        sqlx::query_as("select result from rule_tests where request_id = $1")
            .bind(request_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(r,)| r).map(|Json(r)| r))
}

/// Housekeeping: tests older than `max_age` (their callers gave up long ago).
pub async fn purge_tests_older_than(pool: &PgPool, max_age: std::time::Duration) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("delete from rule_tests where created_at < now() - make_interval(secs => $1)")
            .bind(max_age.as_secs_f64())
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
