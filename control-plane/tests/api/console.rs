//! The web console: static files at `/`, index.html for unknown non-API paths (SPA routes), JSON 404
//! for unknown API paths, and no console at all when the directory is missing.

use reqwest::Method;
use serde_json::json;

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

#[tokio::test]
async fn security_headers_on_the_console_and_the_api() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>console</title>").unwrap();
    let path = dir.path().to_path_buf();
    let s = TestServer::start_with(|c| c.console_dir = path).await;
    for page in ["/", "/api/v1/instances", "/healthz"] {
        let res = s.http.get(format!("{}{page}", s.base)).send().await.unwrap();
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }
}

/// The console's session lives in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS); requests
/// it authenticates need the CSRF token unless they are GETs; bearer tokens keep working for API clients.
#[tokio::test]
async fn console_sessions_are_httponly_cookies_with_csrf_protection() {
    let s = TestServer::start().await;
    let login = json!({"username": "admin", "password": crate::server::ADMIN_PASSWORD});
    let res = s
        .http
        .post(format!("{}/api/v1/console/session", s.base))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/api"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body.get("token").is_none(),
        "the session token must not be readable: {body}"
    );
    let csrf = body["csrfToken"].as_str().unwrap().to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    let call = |method: Method, path: &str, csrf: Option<&str>| {
        let mut req = s
            .http
            .request(method, format!("{}{path}", s.base))
            .header("cookie", &cookie);
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        req.json(&json!({"name": "by-console"})).send()
    };
    assert_eq!(
        call(Method::GET, "/api/v1/instances", None).await.unwrap().status(),
        200
    );
    let refused = call(Method::POST, "/api/v1/instances", None).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<serde_json::Value>().await.unwrap()["code"],
        "InvalidCsrfToken"
    );
    let wrong = call(Method::POST, "/api/v1/instances", Some("00")).await.unwrap();
    assert_eq!(wrong.status(), 403);
    assert_eq!(
        call(Method::POST, "/api/v1/instances", Some(&csrf))
            .await
            .unwrap()
            .status(),
        201
    );

    // After a reload the console asks for its session (and CSRF token) again.
    let again: serde_json::Value = call(Method::GET, "/api/v1/console/session", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["csrfToken"], csrf.as_str());
    s.raw(Method::GET, "/api/v1/console/session", None, None)
        .await
        .expect_error(401, "Unauthenticated");
    let out = call(Method::DELETE, "/api/v1/console/session", None).await.unwrap();
    assert_eq!(out.status(), 204);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));

    // Behind an HTTPS proxy the cookie is Secure.
    let res = s
        .http
        .post(format!("{}/api/v1/console/session", s.base))
        .header("x-forwarded-proto", "https")
        .json(&login)
        .send()
        .await
        .unwrap();
    assert!(res.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
}
