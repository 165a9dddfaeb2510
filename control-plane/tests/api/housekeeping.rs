//! Housekeeping deletes expired nonces, tokens a day past their expiry, client events older than 7
//! days, broker commands older than 10 minutes (but the newest) and configuration change records
//! older than 7 days, and nothing else.

use crate::server::TestServer;

#[tokio::test]
async fn purges_only_what_has_expired() {
    let s = TestServer::start().await;
    let db = &s.state.db;
    let id = s.create_instance("house").await;
    sqlx::query(
        "insert into request_nonces (access_key_id, nonce, expires_at) values
         ('ak', 'old', now() - interval '1 second'), ('ak', 'fresh', now() + interval '10 minutes')",
    )
    .execute(db)
    .await
    .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    for (jti, exp) in [
        ("old", now - 25 * 3600 * 1000),
        ("recent", now - 3600 * 1000),
        ("live", now + 60_000),
    ] {
        sqlx::query(
            "insert into tokens (jti, instance_id, access_key_id, token_sha256, claims, expires_at_ms)
             values ($1, $2, 'ak', $1, '{}', $3)",
        )
        .bind(jti)
        .bind(&id)
        .bind(exp)
        .execute(db)
        .await
        .unwrap();
    }
    sqlx::query(
        "insert into client_events (instance_id, client_id, node_id, channel_id, event_type, client_ip, time_ms, created_at)
         values ('i', 'old', 'n', 'c', 'connect', 'ip', 0, now() - interval '8 days'),
                ('i', 'recent', 'n', 'c', 'connect', 'ip', 0, now() - interval '6 days')",
    )
    .execute(db)
    .await
    .unwrap();
    // Two old commands: the older goes, the newest stays (it holds the latest sequence number).
    sqlx::query(
        "insert into broker_commands (command, created_at) values
         ('{}', now() - interval '20 minutes'), ('{}', now() - interval '11 minutes')",
    )
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "insert into config_changes (version, instance_id, changed_at) values
         (-2, 'old', now() - interval '8 days'), (-1, 'recent', now() - interval '6 days')",
    )
    .execute(db)
    .await
    .unwrap();
    let purged = control_plane::housekeeping::run_once(db).await.unwrap();
    assert_eq!(
        (
            purged.nonces,
            purged.tokens,
            purged.client_events,
            purged.commands,
            purged.config_changes
        ),
        (1, 1, 1, 1, 1)
    );
    let (old_changes,): (i64,) = sqlx::query_as("select count(*) from config_changes where instance_id = 'old'")
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(old_changes, 0);
    let left: Vec<(String,)> = sqlx::query_as("select client_id from client_events")
        .fetch_all(db)
        .await
        .unwrap();
    assert_eq!(left, vec![("recent".to_string(),)]);
    let (commands,): (i64,) = sqlx::query_as("select count(*) from broker_commands")
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(commands, 1);
    let left: Vec<(String,)> = sqlx::query_as("select jti from tokens order by jti")
        .fetch_all(db)
        .await
        .unwrap();
    assert_eq!(left, vec![("live".to_string(),), ("recent".to_string(),)]);
    let left: Vec<(String,)> = sqlx::query_as("select nonce from request_nonces")
        .fetch_all(db)
        .await
        .unwrap();
    assert_eq!(left, vec![("fresh".to_string(),)]);
}
