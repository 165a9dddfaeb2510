//! Strings PostgreSQL cannot store (a NUL character) answer 400 `InvalidParameter` wherever they come
//! in: JSON bodies (bearer and signed), paths and query strings; invalid UTF-8 in a path answers the
//! JSON 400 too. The broker-sync event endpoint answers 400 for a batch with such an event, an
//! over-long field or an impossible time, and applies nothing of it.

use common::sync::{EVENTS_PATH, HEARTBEAT_PATH};
use reqwest::Method;
use serde_json::json;

use crate::brokers::heartbeat;
use crate::server::TestServer;
use crate::sessions::{event, send_events};

#[tokio::test]
async fn nul_in_bodies_paths_and_queries_is_a_400() {
    let s = TestServer::start().await;
    let id = s.create_instance("nul").await;
    s.create_topic(&id, "T").await;
    s.create_group(&id, "GID_nul").await;
    let key = s.create_access_key(&[&id]).await;

    // Bodies: the field holding the NUL is named.
    s.op(
        Method::POST,
        "/api/v1/access-keys",
        Some(json!({"instanceIds": [id, "x\u{0}"]})),
    )
    .await
    .expect_invalid("instanceIds");
    s.op(
        Method::POST,
        "/api/v1/instances",
        Some(json!({"name": "fine", "description": "a\u{0}b"})),
    )
    .await
    .expect_invalid("description");
    s.op(
        Method::PATCH,
        &format!("/api/v1/instances/{id}"),
        Some(json!({"description": "\u{0}"})),
    )
    .await
    .expect_invalid("description");
    let topics = format!("/api/v1/instances/{id}/topics");
    s.ak(
        &key,
        Method::POST,
        &topics,
        Some(json!({"topic": "U", "description": "\u{0}"})),
    )
    .await
    .expect_invalid("description");
    s.op(
        Method::POST,
        &format!("/api/v1/instances/{id}/sessions/batch-query"),
        Some(json!({"clientIds": ["GID_nul@@@\u{0}"]})),
    )
    .await
    .expect_invalid("clientIds");
    // An escaped backslash followed by "u0000" is ordinary text.
    s.op(
        Method::POST,
        &topics,
        Some(json!({"topic": "V", "description": "\\u0000"})),
    )
    .await
    .expect(201);

    // Paths and queries.
    for path in [
        "/api/v1/instances/%00".to_string(),
        format!("/api/v1/instances/{id}/topics/T%00"),
        format!("/api/v1/instances/{id}/groups/GID_nul%00"),
        format!("/api/v1/instances/{id}/device-credentials/GID_nul@@@d%00"),
        format!("/api/v1/instances/{id}/sessions/GID_nul@@@d%00"),
        "/api/v1/access-keys/%00".to_string(),
    ] {
        s.op(Method::GET, &path, None).await.expect_invalid("path");
    }
    s.op(Method::DELETE, "/api/v1/brokers/a%00", None)
        .await
        .expect_invalid("path");
    s.op(Method::GET, "/api/v1/instances/mqtt-%FF", None)
        .await
        .expect_invalid("path");
    s.op(
        Method::GET,
        &format!("/api/v1/instances/{id}/device-credentials?groupId=GID_nul%00"),
        None,
    )
    .await
    .expect_invalid("query");
    s.op(
        Method::GET,
        &format!("/api/v1/instances/{id}/client-events?clientId=GID_nul@@@d%00"),
        None,
    )
    .await
    .expect_invalid("query");
    s.ak(
        &key,
        Method::GET,
        &format!("/api/v1/instances/{id}/client-events?clientId=a%00"),
        None,
    )
    .await
    .expect_invalid("query");
    // Nothing of the above reached the database.
    s.op(Method::GET, &topics, None).await.expect(200);
}

#[tokio::test]
async fn broker_event_batches_with_unstorable_events_are_refused_whole() {
    let s = TestServer::start().await;
    let node = s.create_node("node-a").await;
    let inst = s.create_instance("events").await;
    let good = event(&inst, "GID_g@@@ok", "connect", "c1", &[]);
    let long = "x".repeat(1025);
    let max = "x".repeat(1024);
    let post = |events: Vec<serde_json::Value>| {
        s.node(
            &node,
            Method::POST,
            EVENTS_PATH,
            Some(json!({"bootId": "b1", "events": events})),
        )
    };

    post(vec![good.clone(), event(&inst, "GID_g@@@\u{0}", "connect", "c2", &[])])
        .await
        .expect_invalid("events[1].clientId");
    post(vec![good.clone(), event(&inst, &long, "connect", "c2", &[])])
        .await
        .expect_invalid("events[1].clientId");
    post(vec![event(&inst, "GID_g@@@a", "connect", &long, &[])])
        .await
        .expect_invalid("events[0].channelId");
    post(vec![event(&inst, "GID_g@@@a", "subscribe", "c1", &[&long])])
        .await
        .expect_invalid("events[0].topics");
    post(vec![event(&inst, "GID_g@@@a", "subscribe", "c1", &["T/\u{0}"])])
        .await
        .expect_invalid("events[0].topics");
    let mut far = good.clone();
    far["time"] = json!(i64::MAX);
    post(vec![far]).await.expect_invalid("events[0].time");
    s.node(
        &node,
        Method::POST,
        EVENTS_PATH,
        Some(json!({"bootId": long, "events": []})),
    )
    .await
    .expect_invalid("bootId");
    let mut hb = heartbeat("b1", 0);
    hb["lastError"] = json!("broken\u{0}");
    s.node(&node, Method::POST, HEARTBEAT_PATH, Some(hb))
        .await
        .expect_invalid("lastError");

    // Nothing of a refused batch was applied; the largest accepted fields go through.
    let session = format!("/api/v1/instances/{inst}/sessions/GID_g@@@ok");
    assert_eq!(s.op(Method::GET, &session, None).await.expect(200)["online"], false);
    send_events(
        &s,
        &node,
        "b1",
        vec![
            good,
            event(&inst, &max, "connect", &max, &[]),
            event(&inst, &max, "subscribe", &max, &[&max]),
        ],
    )
    .await;
    assert_eq!(s.op(Method::GET, &session, None).await.expect(200)["online"], true);
}
