//! Client events from brokers -> QuerySessionByClientId, BatchQuerySessionByClientIds (at most 10),
//! CloseConnection and ListClientEvents; a new boot id drops the node's channels.

use common::sync::{EVENTS_PATH, HEARTBEAT_PATH};
use reqwest::Method;
use serde_json::{Value, json};

use crate::brokers::heartbeat;
use crate::server::{TestServer, now_ms};

pub fn event(inst: &str, client: &str, kind: &str, channel: &str, topics: &[&str]) -> Value {
    json!({
        "instanceId": inst, "clientId": client, "eventType": kind, "time": now_ms(),
        "channelId": channel, "clientIp": "10.0.0.7:51234", "topics": topics
    })
}

pub async fn send_events(s: &TestServer, node: &(String, String), boot: &str, events: Vec<Value>) {
    s.node(
        node,
        Method::POST,
        EVENTS_PATH,
        Some(json!({"bootId": boot, "events": events})),
    )
    .await
    .expect(204);
}

/// Reports one connection of `client` on `node`.
pub async fn report_connect(
    s: &TestServer,
    node: &(String, String),
    boot: &str,
    inst: &str,
    client: &str,
    channel: &str,
) {
    send_events(s, node, boot, vec![event(inst, client, "connect", channel, &[])]).await;
}

#[tokio::test]
async fn events_feed_sessions_and_trace() {
    let s = TestServer::start().await;
    let a = s.create_node("node-a").await;
    let b = s.create_node("node-b").await;
    let inst = s.create_instance("sess").await;
    let other = s.create_instance("sess-other").await;
    let c1 = "GID_g@@@d1";
    let sr = &s;
    let session = |client: &str| {
        let path = format!("/api/v1/instances/{inst}/sessions/{client}");
        async move { sr.op(Method::GET, &path, None).await }
    };

    let offline = session(c1).await.expect(200);
    assert_eq!(
        offline,
        json!({"clientId": c1, "online": false, "connections": 0, "channels": []})
    );

    // Connect + subscriptions on node A, a second connection on node B, in one batch each.
    send_events(
        &s,
        &a,
        "boot-a1",
        vec![
            event(&inst, c1, "connect", "ch-a", &[]),
            event(&inst, c1, "subscribe", "ch-a", &["T/#", "T/x"]),
            event(&inst, c1, "subscribe", "ch-a", &["T/x", "T/y"]),
            event(&inst, c1, "unsubscribe", "ch-a", &["T/x"]),
            // Same client id in another instance: not mixed up.
            event(&other, c1, "connect", "ch-o", &[]),
        ],
    )
    .await;
    report_connect(&s, &b, "boot-b1", &inst, c1, "ch-b").await;
    let online = session(c1).await.expect(200);
    assert_eq!(
        (online["online"].as_bool(), online["connections"].as_i64()),
        (Some(true), Some(2))
    );
    let ch_a = online["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channelId"] == "ch-a")
        .unwrap();
    assert_eq!(ch_a["nodeId"], "node-a");
    assert_eq!(ch_a["clientIp"], "10.0.0.7:51234");
    assert_eq!(ch_a["subscriptions"], json!(["T/#", "T/y"]));
    let connected_at: chrono::DateTime<chrono::Utc> = ch_a["connectedAt"].as_str().unwrap().parse().unwrap();
    assert!(
        (chrono::Utc::now() - connected_at).num_seconds().abs() < 60,
        "{connected_at}"
    );

    // DISCONNECT alone keeps the channel; tcpclean ends it.
    send_events(&s, &b, "boot-b1", vec![event(&inst, c1, "disconnect", "ch-b", &[])]).await;
    assert_eq!(session(c1).await.expect(200)["connections"], 2);
    send_events(&s, &b, "boot-b1", vec![event(&inst, c1, "tcpclean", "ch-b", &[])]).await;
    assert_eq!(session(c1).await.expect(200)["connections"], 1);

    // Batch: order kept, offline ids included, 1-10 ids.
    let batch_path = format!("/api/v1/instances/{inst}/sessions/batch-query");
    let ids: Vec<String> = (0..10).map(|i| format!("GID_g@@@d{i}")).collect();
    let batch = s
        .op(Method::POST, &batch_path, Some(json!({"clientIds": ids})))
        .await
        .expect(200);
    let sessions = batch["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 10);
    assert_eq!(sessions[1]["clientId"], c1);
    assert_eq!(sessions[1]["online"], true);
    assert!(sessions.iter().filter(|x| x["online"] == true).count() == 1);
    let eleven: Vec<String> = (0..11).map(|i| format!("GID_g@@@d{i}")).collect();
    s.op(Method::POST, &batch_path, Some(json!({"clientIds": eleven})))
        .await
        .expect_invalid("clientIds");
    s.op(Method::POST, &batch_path, Some(json!({"clientIds": []})))
        .await
        .expect_invalid("clientIds");

    // Trace: connect/disconnect/tcpclean only (no subscribe), newest first, paged.
    let trace = |q: &str| {
        let path = format!("/api/v1/instances/{inst}/client-events?clientId={c1}{q}");
        async move { sr.op(Method::GET, &path, None).await }
    };
    let all = trace("").await.expect(200);
    assert_eq!(all["total"], 4, "{all}");
    let kinds: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["tcpclean", "disconnect", "connect", "connect"]);
    assert_eq!(all["events"][0]["nodeId"], "node-b");
    assert_eq!(all["events"][0]["clientIp"], "10.0.0.7:51234");
    assert!(all["events"][0]["time"].as_i64().unwrap() > 0);
    let page2 = trace("&pageSize=3&pageNo=2").await.expect(200);
    assert_eq!(page2["events"].as_array().unwrap().len(), 1);
    assert_eq!((page2["total"].as_i64(), page2["pageNo"].as_i64()), (Some(4), Some(2)));
    let future = trace(&format!("&startTime={}", now_ms() + 60_000)).await.expect(200);
    assert_eq!(future["total"], 0);
    s.op(Method::GET, &format!("/api/v1/instances/{inst}/client-events"), None)
        .await
        .expect_invalid("clientId");
    trace("&pageSize=0").await.expect_invalid("pageSize");

    // CloseConnection: 202 when online, 404 when not.
    s.op(
        Method::POST,
        &format!("/api/v1/instances/{inst}/sessions/{c1}/close"),
        None,
    )
    .await
    .expect(202);
    s.op(
        Method::POST,
        &format!("/api/v1/instances/{inst}/sessions/GID_g@@@nobody/close"),
        None,
    )
    .await
    .expect_error(404, "NotFound");

    // Node A restarts (new boot id, seen first in a heartbeat): its channels are dropped.
    s.node(&a, Method::POST, HEARTBEAT_PATH, Some(heartbeat("boot-a2", 1)))
        .await
        .expect(204);
    assert_eq!(session(c1).await.expect(200)["online"], false);
    // ... and the same through an event batch: B's channels go when B reports a new boot.
    report_connect(&s, &b, "boot-b1", &inst, "GID_g@@@d2", "ch-b2").await;
    assert_eq!(session("GID_g@@@d2").await.expect(200)["online"], true);
    report_connect(&s, &b, "boot-b2", &inst, "GID_g@@@d3", "ch-b3").await;
    assert_eq!(session("GID_g@@@d2").await.expect(200)["online"], false);
    assert_eq!(session("GID_g@@@d3").await.expect(200)["online"], true);

    // Deleting a node drops its channels.
    s.op(Method::DELETE, "/api/v1/brokers/node-b", None).await.expect(204);
    assert_eq!(session("GID_g@@@d3").await.expect(200)["online"], false);

    // Unknown instance: 404.
    s.op(
        Method::GET,
        "/api/v1/instances/mqtt-000000000000/sessions/GID_g@@@d1",
        None,
    )
    .await
    .expect_error(404, "NotFound");
}

#[tokio::test]
async fn channels_of_a_silent_node_do_not_count() {
    let s = TestServer::start_with(|c| c.broker_silent_secs = 1).await;
    let a = s.create_node("node-a").await;
    let inst = s.create_instance("silent").await;
    s.node(&a, Method::POST, HEARTBEAT_PATH, Some(heartbeat("boot-1", 1)))
        .await
        .expect(204);
    report_connect(&s, &a, "boot-1", &inst, "GID_g@@@d1", "ch-1").await;
    let path = format!("/api/v1/instances/{inst}/sessions/GID_g@@@d1");
    assert_eq!(s.op(Method::GET, &path, None).await.expect(200)["online"], true);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_eq!(s.op(Method::GET, &path, None).await.expect(200)["online"], false);
    // Back with the same boot id: the connection is still there.
    s.node(&a, Method::POST, HEARTBEAT_PATH, Some(heartbeat("boot-1", 1)))
        .await
        .expect(204);
    assert_eq!(s.op(Method::GET, &path, None).await.expect(200)["online"], true);
}
