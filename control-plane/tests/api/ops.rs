//! Operations endpoints and cross-cutting behaviour: health, readiness, metrics, request ids.

use reqwest::Method;

use crate::server::TestServer;

#[tokio::test]
async fn health_ready_metrics_and_request_ids() {
    let s = TestServer::start().await;
    let get = |p: &str| s.http.get(format!("{}{p}", s.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    s.op(Method::GET, "/api/v1/instances", None).await.expect(200);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("cp_http_requests_total"), "{metrics}");

    // Every answer carries a request id; errors repeat it in the body.
    let r = s.raw(Method::GET, "/api/v1/instances", None, None).await;
    let header = r.headers.get("x-request-id").unwrap().to_str().unwrap().to_string();
    assert_eq!(r.expect_error(401, "Unauthenticated")["requestId"], header.as_str());
    let r = s
        .http
        .get(format!("{}/api/v1/instances/x", s.base))
        .header("x-request-id", "my-id-1")
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "my-id-1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (body["code"].as_str(), body["requestId"].as_str()),
        (Some("NotFound"), Some("my-id-1"))
    );

    // Unknown routes and methods answer in the same JSON shape.
    s.op(Method::GET, "/api/v1/nothing-here", None)
        .await
        .expect_error(404, "NotFound");
    s.op(Method::PUT, "/api/v1/instances", None)
        .await
        .expect_error(405, "MethodNotAllowed");
}
