//! Instances: CRUD, name rules, quota defaults and updates.

use reqwest::Method;
use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn crud_with_defaults_endpoints_and_usage() {
    let s = TestServer::start().await;
    let created = s
        .op(
            Method::POST,
            "/api/v1/instances",
            Some(json!({"name": "demo-1", "description": "d"})),
        )
        .await
        .expect(201);
    let id = created["instanceId"].as_str().unwrap();
    assert!(common::names::is_instance_id(id), "{id}");
    assert_eq!(created["quotas"]["maxParentTopics"], 25);
    assert_eq!(created["quotas"]["maxTokenResources"], 100);
    assert_eq!(created["quotas"]["maxClientIdLength"], 64);
    assert_eq!(created["quotas"]["maxMessageSize"], 65536);
    assert_eq!(created["endpoints"], json!(["tcp://127.0.0.1:1883"]));

    s.create_topic(id, "T1").await;
    s.create_group(id, "GID_one").await;
    let got = s
        .op(Method::GET, &format!("/api/v1/instances/{id}"), None)
        .await
        .expect(200);
    assert_eq!(got["name"], "demo-1");
    assert_eq!(got["usage"]["parentTopics"], 1);
    assert_eq!(got["usage"]["groupIds"], 1);

    let list = s.op(Method::GET, "/api/v1/instances", None).await.expect(200);
    assert_eq!(list["instances"].as_array().unwrap().len(), 1);

    let updated = s
        .op(
            Method::PATCH,
            &format!("/api/v1/instances/{id}"),
            Some(json!({"name": "demo-2", "quotas": {"maxParentTopics": 3}, "rejectDuplicateClientId": true})),
        )
        .await
        .expect(200);
    assert_eq!(updated["name"], "demo-2");
    assert_eq!(updated["quotas"]["maxParentTopics"], 3);
    assert_eq!(updated["quotas"]["maxRules"], 100, "other quotas keep their values");
    assert_eq!(updated["rejectDuplicateClientId"], true);

    s.op(Method::DELETE, &format!("/api/v1/instances/{id}"), None)
        .await
        .expect(204);
    s.op(Method::GET, &format!("/api/v1/instances/{id}"), None)
        .await
        .expect_error(404, "NotFound");
    s.op(Method::DELETE, &format!("/api/v1/instances/{id}"), None)
        .await
        .expect_error(404, "NotFound");
    s.op(
        Method::PATCH,
        &format!("/api/v1/instances/{id}"),
        Some(json!({"description": "x"})),
    )
    .await
    .expect_error(404, "NotFound");
}

#[tokio::test]
async fn name_rules_and_uniqueness() {
    let s = TestServer::start().await;
    for good in ["abc", "A_b-9", &"x".repeat(64)] {
        s.op(Method::POST, "/api/v1/instances", Some(json!({"name": good})))
            .await
            .expect(201);
    }
    for bad in ["ab", "", "a b c", "abc.def", "名字名字", &"x".repeat(65)] {
        s.op(Method::POST, "/api/v1/instances", Some(json!({"name": bad})))
            .await
            .expect_invalid("name");
    }
    // Uniqueness is case-insensitive.
    let dup = s
        .op(Method::POST, "/api/v1/instances", Some(json!({"name": "ABC"})))
        .await
        .expect_error(409, "AlreadyExists");
    assert_eq!(dup["message"], "an instance named \"ABC\" already exists");
    let id = s.create_instance("other").await;
    let dup_update = s
        .op(
            Method::PATCH,
            &format!("/api/v1/instances/{id}"),
            Some(json!({"name": "Abc"})),
        )
        .await
        .expect_error(409, "AlreadyExists");
    assert_eq!(dup_update["message"], "an instance named \"Abc\" already exists");
    s.op(
        Method::PATCH,
        &format!("/api/v1/instances/{id}"),
        Some(json!({"name": "x"})),
    )
    .await
    .expect_invalid("name");
}

#[tokio::test]
async fn bad_bodies_name_the_field() {
    let s = TestServer::start().await;
    s.op(Method::POST, "/api/v1/instances", Some(json!({})))
        .await
        .expect_invalid("name");
    s.op(Method::POST, "/api/v1/instances", Some(json!({"name": 5})))
        .await
        .expect_invalid("name");
    s.op(
        Method::POST,
        "/api/v1/instances",
        Some(json!({"name": "abc", "quotas": {"maxParentTopics": 0}})),
    )
    .await
    .expect_invalid("quotas.maxParentTopics");
    s.op(
        Method::POST,
        "/api/v1/instances",
        Some(json!({"name": "abc", "quotas": {"maxParentTopics": -1}})),
    )
    .await
    .expect_invalid("quotas.maxParentTopics");
    let r = s
        .http
        .post(format!("{}/api/v1/instances", s.base))
        .bearer_auth(&s.admin_token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "InvalidParameter");
}

/// UpdateInstance refuses quotas below what the instance holds (409 `QuotaBelowUsage` naming the
/// quota); a device credential with a client ID longer than the new `maxClientIdLength` would have made
/// every broker refuse the whole snapshot. Quotas have upper bounds, and a token that would not fit in
/// an MQTT password is refused.
#[tokio::test]
async fn quotas_cannot_drop_below_what_the_instance_holds() {
    let s = TestServer::start().await;
    let id = s.create_instance("holdings").await;
    let path = format!("/api/v1/instances/{id}");
    for topic in ["T", "U", "a-parent-of-20-chars"] {
        s.create_topic(&id, topic).await;
    }
    s.create_group(&id, "GID_qqq").await;
    let client = format!("GID_qqq@@@{}", "d".repeat(40));
    s.op(
        Method::POST,
        &format!("{path}/device-credentials"),
        Some(json!({"clientId": client})),
    )
    .await
    .expect(201);
    let key = s.create_access_key(&[&id]).await;
    let token = s
        .op(
            Method::POST,
            &format!("{path}/tokens"),
            Some(
                json!({"resources": "T/1,T/2,T/3,T/4,T/5", "actions": "R", "accessKeyId": key.0,
                "expireTime": crate::server::now_ms() + 3_600_000}),
            ),
        )
        .await
        .expect(200)["token"]
        .clone();
    let patch = |quotas: serde_json::Value| s.op(Method::PATCH, &path, Some(json!({"quotas": quotas})));

    for (quota, below, enough) in [
        ("maxParentTopics", 2, 3),
        ("maxTopicLength", 19, 20),
        ("maxClientIdLength", 49, 50),
        ("maxTokenResources", 4, 5),
    ] {
        let body = patch(json!({ quota: below }))
            .await
            .expect_error(409, "QuotaBelowUsage");
        assert_eq!(body["field"], format!("quotas.{quota}"), "{body:?}");
        patch(json!({ quota: enough })).await.expect(200);
    }
    // Nothing refused reached the snapshot, and what did is one a broker accepts.
    let snapshot = control_plane::broker_link::snapshot::build(&s.state.db, &s.state.secrets)
        .await
        .unwrap();
    snapshot.validate().expect("brokers accept the snapshot");
    assert_eq!(snapshot.content.instances[0].quotas.max_client_id_length, 50);

    // A revoked token no longer holds anything.
    s.op(
        Method::POST,
        &format!("{path}/tokens/revoke"),
        Some(json!({"token": token})),
    )
    .await
    .expect(204);
    patch(json!({"maxTokenResources": 1})).await.expect(200);

    // Upper bounds.
    patch(json!({"maxTopicLength": 1025}))
        .await
        .expect_invalid("quotas.maxTopicLength");
    patch(json!({"maxClientIdLength": 1025}))
        .await
        .expect_invalid("quotas.maxClientIdLength");
    patch(json!({"maxMessageSize": (1 << 20) + 1}))
        .await
        .expect_invalid("quotas.maxMessageSize");

    // A token must fit in an MQTT password (65,535 bytes).
    patch(json!({"maxTokenResources": 1000, "maxTopicLength": 1024}))
        .await
        .expect(200);
    let resources: Vec<String> = (0..50).map(|i| format!("T/{i:03}{}", "x".repeat(990))).collect();
    s.op(
        Method::POST,
        &format!("{path}/tokens"),
        Some(
            json!({"resources": resources.join(","), "actions": "R", "accessKeyId": key.0,
            "expireTime": crate::server::now_ms() + 3_600_000}),
        ),
    )
    .await
    .expect_invalid("resources");
}
