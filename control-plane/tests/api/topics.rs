//! Parent topics: name rules, uniqueness, the per-instance limit, get/list/delete.

use reqwest::Method;
use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn crud_and_name_rules() {
    let s = TestServer::start().await;
    let id = s.create_instance("topics").await;
    let path = format!("/api/v1/instances/{id}/topics");
    for good in ["T", "a_b-C9", &"t".repeat(64)] {
        s.op(Method::POST, &path, Some(json!({"topic": good})))
            .await
            .expect(201);
    }
    for bad in ["", "a/b", "a+", "a#", "a b", "a.b", &"t".repeat(65)] {
        s.op(Method::POST, &path, Some(json!({"topic": bad})))
            .await
            .expect_invalid("topic");
    }
    let dup = s
        .op(Method::POST, &path, Some(json!({"topic": "T"})))
        .await
        .expect_error(409, "AlreadyExists");
    assert_eq!(dup["message"], "parent topic \"T\" already exists");
    // Topics are case-sensitive, like MQTT.
    s.op(Method::POST, &path, Some(json!({"topic": "t"}))).await.expect(201);

    let got = s.op(Method::GET, &format!("{path}/T"), None).await.expect(200);
    assert_eq!(got["topic"], "T");
    let list = s.op(Method::GET, &path, None).await.expect(200);
    assert_eq!(list["topics"].as_array().unwrap().len(), 4);
    s.op(Method::DELETE, &format!("{path}/T"), None).await.expect(204);
    s.op(Method::GET, &format!("{path}/T"), None)
        .await
        .expect_error(404, "NotFound");
    s.op(Method::DELETE, &format!("{path}/T"), None)
        .await
        .expect_error(404, "NotFound");
    let missing = "/api/v1/instances/mqtt-000000000000/topics";
    s.op(Method::GET, missing, None).await.expect_error(404, "NotFound");
    s.op(Method::POST, missing, Some(json!({"topic": "x"})))
        .await
        .expect_error(404, "NotFound");
}

#[tokio::test]
async fn at_most_25_parent_topics_by_default_and_configurable() {
    let s = TestServer::start().await;
    let id = s.create_instance("limits").await;
    let path = format!("/api/v1/instances/{id}/topics");
    for i in 0..25 {
        s.op(Method::POST, &path, Some(json!({"topic": format!("t{i}")})))
            .await
            .expect(201);
    }
    let e = s
        .op(Method::POST, &path, Some(json!({"topic": "t25"})))
        .await
        .expect_error(409, "QuotaExceeded");
    assert!(e["message"].as_str().unwrap().contains("25"));
    s.op(
        Method::PATCH,
        &format!("/api/v1/instances/{id}"),
        Some(json!({"quotas": {"maxParentTopics": 26}})),
    )
    .await
    .expect(200);
    s.op(Method::POST, &path, Some(json!({"topic": "t25"})))
        .await
        .expect(201);
    s.op(Method::POST, &path, Some(json!({"topic": "t26"})))
        .await
        .expect_error(409, "QuotaExceeded");
}
