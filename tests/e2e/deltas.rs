//! Configuration deltas between real processes: a change reaches the broker as a delta whose size
//! follows the change, not the instance; a broker away longer than the change records reach back
//! gets the full snapshot and serves what changed meanwhile; a broker whose configuration differs
//! from the control plane's at the same version (its digest says so) is mended with the full
//! snapshot. (A delta that fails validation:
//! `snapshot_refusal`; deltas replayed from the cache after a restart: `outage`.)

use std::time::{Duration, Instant};

use serde_json::json;

use e2e::System;
use e2e::system::NODE_SECRET;

use crate::probe::until_accepted;

const DELTA_BYTES: &str = "broker_config_received_bytes_total{kind=\"delta\"}";
const SNAPSHOTS: &str = "broker_config_received_total{kind=\"snapshot\"}";

/// The size of the full snapshot as the control plane serves it to node-1.
async fn snapshot_bytes(cp_url: &str) -> usize {
    reqwest::Client::new()
        .get(format!("{cp_url}{}", common::sync::SNAPSHOT_PATH))
        .header("authorization", common::sync::node_authorization("node-1", NODE_SECRET))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn one_new_credential_in_a_large_instance_travels_alone() {
    let s = System::up(1).await;
    let (fx, broker) = (&s.fx, s.broker());
    for batch in 0..3 {
        let ids: Vec<String> = (0..1000).map(|i| fx.client_id(&format!("bulk-{batch}-{i}"))).collect();
        s.api
            .post(
                &format!("/instances/{}/device-credentials/batch", fx.instance),
                json!({"clientIds": ids}),
            )
            .await;
    }
    s.api.wait_in_sync(&["node-1"]).await;
    let snapshot = snapshot_bytes(&s.cp.url).await;

    let before = broker.counter(DELTA_BYTES).await;
    let credential = fx.register_device(&s.api, "one-more").await;
    let port = broker.mqtt_port;
    let took = until_accepted(Instant::now(), || fx.device_opts(&credential, port)).await;
    s.api.wait_in_sync(&["node-1"]).await;
    let sent = broker.counter(DELTA_BYTES).await - before;
    println!("one credential among 3,001: delta {sent} B, full snapshot {snapshot} B, usable after {took:?}");
    assert!(snapshot > 300_000, "the instance is large: {snapshot} B");
    assert!(
        sent > 0.0 && sent < 2_000.0,
        "the delta carried {sent} B for one credential (full snapshot {snapshot} B)"
    );
}

#[tokio::test]
async fn a_broker_away_longer_than_the_change_records_gets_the_full_snapshot() {
    let mut s = System::up(1).await;
    let fx = &s.fx;
    s.brokers[0].kill();
    let credential = fx.register_device(&s.api, "while-away").await;
    // What housekeeping does to records older than its retention (7 days): gone, floor raised.
    let pool = sqlx::PgPool::connect(s.cp.db_url()).await.expect("database");
    sqlx::query("delete from config_changes").execute(&pool).await.unwrap();
    sqlx::query("delete from config_device_changes")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update config_history set floor = (select version from config_version)")
        .execute(&pool)
        .await
        .unwrap();

    s.brokers[0].restart();
    let port = s.broker().mqtt_port;
    until_accepted(Instant::now(), || fx.device_opts(&credential, port)).await;
    assert_eq!(
        s.broker().counter(SNAPSHOTS).await,
        1.0,
        "the restarted broker asked for a delta from its cached version and got the snapshot"
    );
}

#[tokio::test]
async fn a_broker_holding_something_else_is_mended_by_its_digest() {
    let s = System::up(1).await;
    let (fx, broker) = (&s.fx, s.broker());
    let port = broker.mqtt_port;
    let kept = fx.register_device(&s.api, "kept").await;
    let lost = fx.register_device(&s.api, "lost").await;
    until_accepted(Instant::now(), || fx.device_opts(&lost, port)).await;

    // Let a check pass with both in agreement first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.cp.counter("cp_config_digest_mismatches_total").await, 0.0);

    // A credential removed behind the change records (no delta will carry it), then a change the
    // broker does get: its configuration now differs from the control plane's at the same version.
    let pool = sqlx::PgPool::connect(s.cp.db_url()).await.expect("database");
    sqlx::query("delete from device_credentials where client_id = $1")
        .bind(lost["clientId"].as_str().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    s.api
        .post(
            &format!("/instances/{}/groups", fx.instance),
            json!({"groupId": "GID_bump"}),
        )
        .await;
    s.api.wait_in_sync(&["node-1"]).await;
    assert!(
        test_support::mqtt::refusal(fx.device_opts(&lost, port)).await.is_none(),
        "before the check the broker still has the credential"
    );

    // Within a few checks the digest differs, the broker gets the full snapshot and drops it.
    let deadline = Instant::now() + Duration::from_secs(15);
    while test_support::mqtt::refusal(fx.device_opts(&lost, port)).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "still accepted 15 s later: {}",
            s.logs_hint()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(s.cp.counter("cp_config_digest_mismatches_total").await >= 1.0);
    assert!(broker.counter(SNAPSHOTS).await >= 2.0);
    assert!(test_support::mqtt::refusal(fx.device_opts(&kept, port)).await.is_none());
}
