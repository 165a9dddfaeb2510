//! One instance's configuration that a broker cannot serve is refused alone: the broker keeps serving
//! that instance's previous configuration, every other instance keeps receiving its changes, and the
//! broker's heartbeat names the refused instance.

use std::time::{Duration, Instant};

use serde_json::json;
use test_support::mqtt;

use e2e::{Fixture, System};

use crate::probe::until_accepted;

/// Writes a group id no broker may serve straight into the database (the API refuses it) and
/// publishes the change the way the control plane does: version bump, change record, notification.
async fn break_instance(db_url: &str, instance: &str) {
    let pool = sqlx::PgPool::connect(db_url).await.expect("database");
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("insert into group_ids (instance_id, group_id) values ($1, 'not a group id')")
        .bind(instance)
        .execute(&mut *tx)
        .await
        .unwrap();
    let (version,): (i64,) = sqlx::query_as(
        "update config_version set version = version + 1, updated_at = now() where id returning version",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query("insert into config_changes (version, instance_id) values ($1, $2)")
        .bind(version)
        .bind(instance)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("select pg_notify('config_version', $1::text)")
        .bind(version)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_broken_instance_is_refused_alone() {
    let s = System::up(1).await;
    let (api, port) = (&s.api, s.broker().mqtt_port);
    let healthy = &s.fx;
    let broken = Fixture::create(api).await;
    s.api.wait_in_sync(&["node-1"]).await;
    let broken_cid = broken.client_id("before");
    until_accepted(Instant::now(), || broken.signature_opts(&broken_cid, port)).await;

    break_instance(s.cp.db_url(), &broken.instance).await;

    // The broker reports the refusal, naming the instance, once it has the new version.
    let mut reported = None;
    for _ in 0..100 {
        let b = api.brokers().await;
        let node = &b["brokers"][0];
        if node["state"] == "in_sync"
            && let Some(err) = node["lastError"].as_str()
        {
            reported = Some(err.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reported = reported.unwrap_or_else(|| panic!("no refusal reported: {}", s.logs_hint()));
    assert!(
        reported.contains(&broken.instance) && reported.contains("not a group id"),
        "{reported}"
    );
    assert!(!reported.contains(&healthy.instance), "{reported}");

    // The healthy instance still gets its changes.
    api.post(
        &format!("/instances/{}/groups", healthy.instance),
        json!({"groupId": "GID_after"}),
    )
    .await;
    let cid = "GID_after@@@d".to_string();
    until_accepted(Instant::now(), || healthy.signature_opts(&cid, port)).await;

    // The broken instance keeps its previous configuration: its clients still connect.
    let (_c, _ev, _) = mqtt::connect(broken.signature_opts(&broken.client_id("after"), port))
        .await
        .expect("the refused instance's previous configuration is still served");
}
