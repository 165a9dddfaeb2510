//! The web console: static files at `/`, index.html for unknown non-API paths (SPA routes), JSON 404
//! for unknown API paths, and no console at all when the directory is missing.

use reqwest::Method;

use crate::server::TestServer;

async fn get(s: &TestServer, path: &str) -> (u16, String, String) {
    let res = s.http.get(format!("{}{path}", s.base)).send().await.unwrap();
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, res.text().await.unwrap())
}

#[tokio::test]
async fn serves_the_console_with_spa_fallback() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>console</title>").unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "console.log(1)").unwrap();
    let path = dir.path().to_path_buf();
    let s = TestServer::start_with(|c| c.console_dir = path).await;

    let (status, ctype, body) = get(&s, "/").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(body.contains("<title>console</title>"));
    let (status, ctype, body) = get(&s, "/assets/app.js").await;
    assert_eq!((status, body.as_str()), (200, "console.log(1)"));
    assert!(ctype.contains("javascript"), "{ctype}");
    // Client-side routes get index.html.
    let (status, _, body) = get(&s, "/instances/mqtt-abc/topics").await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>console</title>"));

    // API paths keep their JSON answers.
    s.raw(Method::GET, "/api/v1/nope", None, None)
        .await
        .expect_error(404, "NotFound");
    s.raw(Method::GET, "/api", None, None)
        .await
        .expect_error(404, "NotFound");
    s.op(Method::GET, "/api/v1/instances", None).await.expect(200);
    assert_eq!(get(&s, "/healthz").await.2, "ok");
}

#[tokio::test]
async fn no_console_directory_means_json_404() {
    let s = TestServer::start_with(|c| c.console_dir = "/nonexistent/console".into()).await;
    s.raw(Method::GET, "/", None, None).await.expect_error(404, "NotFound");
    s.raw(Method::GET, "/some/page", None, None)
        .await
        .expect_error(404, "NotFound");
}
