//! AccessKeys: the secret is shown once; list/get never return it; enable/disable, bind, delete;
//! operator-only.

use reqwest::Method;
use serde_json::json;

use crate::server::TestServer;

#[tokio::test]
async fn lifecycle_and_secret_shown_once() {
    let s = TestServer::start().await;
    let a = s.create_instance("inst-a").await;
    let b = s.create_instance("inst-b").await;
    let created = s
        .op(
            Method::POST,
            "/api/v1/access-keys",
            Some(json!({"description": "app", "instanceIds": [a]})),
        )
        .await
        .expect(201);
    let id = created["accessKeyId"].as_str().unwrap().to_string();
    let secret = created["accessKeySecret"].as_str().unwrap().to_string();
    assert!(id.starts_with("LTAI") && secret.len() >= 30);
    assert_eq!(created["instanceIds"], json!([a]));
    assert_eq!(created["enabled"], true);

    let list = s.op(Method::GET, "/api/v1/access-keys", None).await.expect(200);
    let got = s
        .op(Method::GET, &format!("/api/v1/access-keys/{id}"), None)
        .await
        .expect(200);
    for body in [&list, &got] {
        let text = body.to_string();
        assert!(!text.contains(&secret), "secret leaked: {text}");
        assert!(!text.contains("accessKeySecret"), "secret field present: {text}");
    }
    assert_eq!(list["accessKeys"].as_array().unwrap().len(), 1);

    let path = format!("/api/v1/access-keys/{id}");
    let updated = s
        .op(
            Method::PATCH,
            &path,
            Some(json!({"enabled": false, "instanceIds": [a, b]})),
        )
        .await
        .expect(200);
    assert_eq!(updated["enabled"], false);
    let mut bound: Vec<String> = serde_json::from_value(updated["instanceIds"].clone()).unwrap();
    bound.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(bound, want);
    assert!(!updated.to_string().contains(&secret));
    let updated = s
        .op(Method::PATCH, &path, Some(json!({"instanceIds": []})))
        .await
        .expect(200);
    assert_eq!(updated["instanceIds"], json!([]));
    s.op(
        Method::PATCH,
        &path,
        Some(json!({"instanceIds": ["mqtt-000000000000"]})),
    )
    .await
    .expect_invalid("instanceIds");
    s.op(
        Method::POST,
        "/api/v1/access-keys",
        Some(json!({"instanceIds": ["nope"]})),
    )
    .await
    .expect_invalid("instanceIds");

    s.op(Method::DELETE, &path, None).await.expect(204);
    s.op(Method::GET, &path, None).await.expect_error(404, "NotFound");
    s.op(Method::PATCH, &path, Some(json!({"enabled": true})))
        .await
        .expect_error(404, "NotFound");
    s.op(Method::DELETE, &path, None).await.expect_error(404, "NotFound");
}

#[tokio::test]
async fn account_operations_are_operator_only() {
    let s = TestServer::start().await;
    let a = s.create_instance("inst-a").await;
    let key = s.create_access_key(&[&a]).await;
    let other = s.create_access_key(&[&a]).await;
    let p = format!("/api/v1/access-keys/{}", other.0);
    s.ak(&key, Method::POST, "/api/v1/access-keys", Some(json!({})))
        .await
        .expect_error(403, "Forbidden");
    s.ak(&key, Method::GET, "/api/v1/access-keys", None)
        .await
        .expect_error(403, "Forbidden");
    s.ak(&key, Method::GET, &p, None).await.expect_error(403, "Forbidden");
    s.ak(&key, Method::PATCH, &p, Some(json!({"enabled": false})))
        .await
        .expect_error(403, "Forbidden");
    s.ak(&key, Method::DELETE, &p, None)
        .await
        .expect_error(403, "Forbidden");
    s.ak(&key, Method::POST, "/api/v1/instances", Some(json!({"name": "mine"})))
        .await
        .expect_error(403, "Forbidden");
    // Even on its own instance, changing or deleting the instance is the operator's.
    s.ak(
        &key,
        Method::PATCH,
        &format!("/api/v1/instances/{a}"),
        Some(json!({"description": "x"})),
    )
    .await
    .expect_error(403, "Forbidden");
    s.ak(&key, Method::DELETE, &format!("/api/v1/instances/{a}"), None)
        .await
        .expect_error(403, "Forbidden");
    // Reading its own instance is fine, and listing shows only bound instances.
    s.create_instance("inst-b").await;
    s.ak(&key, Method::GET, &format!("/api/v1/instances/{a}"), None)
        .await
        .expect(200);
    let list = s.ak(&key, Method::GET, "/api/v1/instances", None).await.expect(200);
    assert_eq!(list["instances"].as_array().unwrap().len(), 1);
    assert_eq!(list["instances"][0]["instanceId"], a.as_str());
}
