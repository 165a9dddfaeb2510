//! Configuration deltas between real processes: a change reaches the broker as a delta whose size
//! follows the change, not the instance; a broker away longer than the change records reach back
//! gets the full snapshot and serves what changed meanwhile. (A delta that fails validation:
//! `snapshot_refusal`; deltas replayed from the cache after a restart: `outage`.)

use std::time::Instant;

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
