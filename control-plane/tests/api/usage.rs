//! Per-instance usage from the brokers' heartbeats, posted the way brokers post them: GetInstance's
//! current figures against the quotas (summed over the brokers heard from lately; offline messages the
//! largest report), GetInstanceUsageHistory's points per minute, and housekeeping of both.

use std::time::Duration;

use common::sync::HEARTBEAT_PATH;
use reqwest::Method;
use serde_json::{Value, json};

use crate::brokers::heartbeat;
use crate::server::TestServer;

fn figures(instance: &str, connections: u64, subscriptions: u64, rate_in: f64, rate_out: f64, offline: u64) -> Value {
    json!({
        "instanceId": instance, "connections": connections, "subscriptions": subscriptions,
        "messagesInPerSec": rate_in, "messagesOutPerSec": rate_out, "offlineMessages": offline
    })
}

async fn beat(s: &TestServer, node: &(String, String), boot: &str, instances: Vec<Value>) {
    let mut hb = heartbeat(boot, 1);
    hb["clusterLink"] = json!(true);
    hb["instances"] = json!(instances);
    s.node(node, Method::POST, HEARTBEAT_PATH, Some(hb)).await.expect(204);
}

async fn usage(s: &TestServer, instance: &str) -> Value {
    s.op(Method::GET, &format!("/api/v1/instances/{instance}"), None)
        .await
        .expect(200)["usage"]
        .clone()
}

#[tokio::test]
async fn current_usage_adds_up_the_live_brokers() {
    let s = TestServer::start_with(|c| c.broker_silent_secs = 2).await;
    let a = s.create_instance("used-a").await;
    let b = s.create_instance("used-b").await;
    let n1 = s.create_node("n1").await;
    let n2 = s.create_node("n2").await;

    // Nothing reported yet: zeros next to the quotas.
    let u = usage(&s, &a).await;
    assert_eq!(
        (u["connections"].as_i64(), u["reportingBrokers"].as_i64()),
        (Some(0), Some(0)),
        "{u}"
    );

    beat(
        &s,
        &n1,
        "boot-1",
        vec![figures(&a, 3, 5, 10.5, 20.0, 40), figures(&b, 1, 1, 0.0, 0.0, 0)],
    )
    .await;
    beat(&s, &n2, "boot-2", vec![figures(&a, 4, 6, 1.5, 2.0, 42)]).await;
    let got = s
        .op(Method::GET, &format!("/api/v1/instances/{a}"), None)
        .await
        .expect(200);
    let u = &got["usage"];
    assert_eq!(u["connections"], 7, "{u}");
    assert_eq!(u["subscriptions"], 11);
    assert_eq!(u["messagesInPerSec"], 12.0);
    assert_eq!(u["messagesOutPerSec"], 22.0);
    // The brokers of a cluster report the shared offline store: the largest report, not the sum.
    assert_eq!(u["offlineMessages"], 42);
    assert_eq!(u["reportingBrokers"], 2);
    // Next to the quotas they count against.
    assert_eq!(got["quotas"]["maxConnections"], 10_000);
    assert_eq!(got["quotas"]["maxMessagesPerSecond"], 10_000);
    assert_eq!(got["quotas"]["maxOfflineMessages"], 1_000_000);
    assert_eq!(usage(&s, &b).await["connections"], 1);

    // n1's next heartbeat no longer names b (its clients left): b counts nothing on n1 any more.
    beat(&s, &n1, "boot-1", vec![figures(&a, 2, 5, 10.5, 20.0, 40)]).await;
    assert_eq!(usage(&s, &b).await["reportingBrokers"], 0);
    assert_eq!(usage(&s, &a).await["connections"], 6);

    // n2 falls silent: only n1 counts once broker_silent_secs (here 2 s) have passed.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        beat(&s, &n1, "boot-1", vec![figures(&a, 2, 5, 10.5, 20.0, 40)]).await;
    }
    let u = usage(&s, &a).await;
    assert_eq!(
        (u["connections"].as_i64(), u["reportingBrokers"].as_i64()),
        (Some(2), Some(1)),
        "{u}"
    );
    assert_eq!(u["offlineMessages"], 40);

    // A broker that runs alone reports no instances: nothing counts for it.
    let mut alone = heartbeat("boot-3", 1);
    alone.as_object_mut().unwrap().remove("instances");
    s.node(&n1, Method::POST, HEARTBEAT_PATH, Some(alone)).await.expect(204);
    assert_eq!(usage(&s, &a).await["reportingBrokers"], 0);

    // Malformed figures: 400, and the heartbeat is not recorded.
    let mut bad = heartbeat("boot-3", 1);
    bad["instances"] = json!([{"instanceId": a, "connections": -1}]);
    s.node(&n1, Method::POST, HEARTBEAT_PATH, Some(bad))
        .await
        .expect_error(400, "InvalidParameter");
}

#[tokio::test]
async fn history_keeps_the_highest_totals_of_each_minute() {
    let s = TestServer::start().await;
    let a = s.create_instance("hist-a").await;
    let n1 = s.create_node("n1").await;
    let n2 = s.create_node("n2").await;
    let path = format!("/api/v1/instances/{a}/usage-history");

    let h = s.op(Method::GET, &path, None).await.expect(200);
    assert_eq!(h, json!({"instanceId": a, "points": []}));

    beat(&s, &n1, "boot-1", vec![figures(&a, 5, 1, 100.0, 50.0, 7)]).await;
    beat(&s, &n2, "boot-2", vec![figures(&a, 5, 1, 100.0, 50.0, 9)]).await;
    // Later in the same minute fewer connections: the minute keeps the peak.
    beat(&s, &n1, "boot-1", vec![figures(&a, 1, 1, 10.0, 5.0, 7)]).await;
    let h = s.op(Method::GET, &path, None).await.expect(200);
    let points = h["points"].as_array().unwrap();
    // Two heartbeats may straddle a minute boundary: then the last minute has the lower totals.
    let peak = points.iter().map(|p| p["connections"].as_i64().unwrap()).max();
    assert_eq!(peak, Some(10), "{h}");
    assert!(points.len() <= 2, "{h}");
    let p = &points[0];
    assert_eq!(
        (p["messagesInPerSec"].as_f64(), p["offlineMessages"].as_i64()),
        (Some(200.0), Some(9)),
        "{h}"
    );
    assert!(p["time"].as_str().unwrap().ends_with(":00Z"), "{h}");

    // Older points (written here as if from yesterday) are outside a short window, and housekeeping
    // drops the ones past 24 hours.
    for (hours_ago, conns) in [(2, 3), (25, 4)] {
        sqlx::query(
            "insert into instance_usage_history (instance_id, minute, connections, subscriptions,
                messages_in_per_sec, messages_out_per_sec, offline_messages)
             values ($1, date_trunc('minute', now() - make_interval(hours => $2)), $3, 0, 0, 0, 0)",
        )
        .bind(&a)
        .bind(hours_ago)
        .bind(conns as i64)
        .execute(&s.state.db)
        .await
        .unwrap();
    }
    let all = s.op(Method::GET, &path, None).await.expect(200);
    assert_eq!(
        all["points"][0]["connections"], 3,
        "the 25-hour-old point is past the window: {all}"
    );
    let hour = s.op(Method::GET, &format!("{path}?minutes=60"), None).await.expect(200);
    assert_eq!(hour["points"].as_array().unwrap().len(), points.len(), "{hour}");
    control_plane::housekeeping::run_once(&s.state.db).await.unwrap();
    let (left,): (i64,) = sqlx::query_as("select count(*) from instance_usage_history where instance_id = $1")
        .bind(&a)
        .fetch_one(&s.state.db)
        .await
        .unwrap();
    assert_eq!(left as usize, points.len() + 1);

    // Bounds, unknown instance, and an AccessKey sees only its own instances.
    for bad in ["0", "1441", "x"] {
        s.op(Method::GET, &format!("{path}?minutes={bad}"), None)
            .await
            .expect_error(400, "InvalidParameter");
    }
    s.op(Method::GET, "/api/v1/instances/mqtt-000000000000/usage-history", None)
        .await
        .expect_error(404, "NotFound");
    let other = s.create_instance("hist-b").await;
    let key = s.create_access_key(&[&other]).await;
    s.ak(&key, Method::GET, &path, None)
        .await
        .expect_error(403, "Forbidden");
    s.ak(
        &key,
        Method::GET,
        &format!("/api/v1/instances/{other}/usage-history"),
        None,
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn stale_reports_are_purged() {
    let s = TestServer::start().await;
    let a = s.create_instance("stale").await;
    let n1 = s.create_node("n1").await;
    beat(&s, &n1, "boot-1", vec![figures(&a, 1, 0, 0.0, 0.0, 0)]).await;
    sqlx::query("update broker_instance_usage set updated_at = now() - interval '11 minutes'")
        .execute(&s.state.db)
        .await
        .unwrap();
    let purged = control_plane::housekeeping::run_once(&s.state.db).await.unwrap();
    assert_eq!(purged.usage, 1);
    let (left,): (i64,) = sqlx::query_as("select count(*) from broker_instance_usage")
        .fetch_one(&s.state.db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_broker_with_thousands_of_instances_fits_in_a_heartbeat() {
    let s = TestServer::start().await;
    let n1 = s.create_node("n1").await;
    // About 150 bytes per instance: far past the API's 64 KiB body limit.
    let many: Vec<Value> = (0..5000)
        .map(|i| figures(&format!("mqtt-{i:012}"), 1, 1, 0.5, 0.5, 0))
        .collect();
    beat(&s, &n1, "boot-1", many).await;
    let (rows,): (i64,) = sqlx::query_as("select count(*) from broker_instance_usage")
        .fetch_one(&s.state.db)
        .await
        .unwrap();
    assert_eq!(rows, 5000);
}
