//! Operator login and ACS3-HMAC-SHA256 AccessKey signing: good, wrong signature, stale timestamp,
//! replayed nonce, tampered body, missing signed headers, unknown and disabled keys.

use reqwest::Method;
use serde_json::json;

use crate::server::{ADMIN_PASSWORD, SignOpts, TestServer};

#[tokio::test]
async fn login_and_bearer_tokens() {
    let s = TestServer::start().await;
    let ok = s
        .raw(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({"username": "admin", "password": ADMIN_PASSWORD})),
        )
        .await
        .expect(200);
    assert!(ok["expiresAt"].as_i64().unwrap() > chrono::Utc::now().timestamp());
    s.raw(
        Method::POST,
        "/api/v1/login",
        None,
        Some(json!({"username": "admin", "password": "wrong"})),
    )
    .await
    .expect_error(401, "Unauthenticated");
    s.raw(
        Method::POST,
        "/api/v1/login",
        None,
        Some(json!({"username": "nobody", "password": "x"})),
    )
    .await
    .expect_error(401, "Unauthenticated");
    s.raw(Method::POST, "/api/v1/login", None, Some(json!({"username": "admin"})))
        .await
        .expect_invalid("password");

    s.raw(Method::GET, "/api/v1/instances", None, None)
        .await
        .expect_error(401, "Unauthenticated");
    s.raw(Method::GET, "/api/v1/instances", Some("Bearer nonsense"), None)
        .await
        .expect_error(401, "Unauthenticated");
    s.raw(Method::GET, "/api/v1/instances", Some("Basic YWRtaW46eA=="), None)
        .await
        .expect_error(401, "Unauthenticated");
    let token = format!("Bearer {}", ok["token"].as_str().unwrap());
    s.raw(Method::GET, "/api/v1/instances", Some(&token), None)
        .await
        .expect(200);
}

#[tokio::test]
async fn acs3_signed_requests() {
    let s = TestServer::start().await;
    let id = s.create_instance("signed").await;
    s.create_topic(&id, "T").await;
    let key = s.create_access_key(&[&id]).await;
    let topics = format!("/api/v1/instances/{id}/topics");

    // Good: GET, POST with a body, and a query string.
    s.ak(&key, Method::GET, &topics, None).await.expect(200);
    s.ak(&key, Method::POST, &topics, Some(json!({"topic": "U"})))
        .await
        .expect(201);
    s.create_group(&id, "GID_grp").await;
    s.ak(
        &key,
        Method::GET,
        &format!("/api/v1/instances/{id}/device-credentials?pageSize=10&groupId=GID_grp"),
        None,
    )
    .await
    .expect(200);

    // Wrong signature, wrong secret, body changed after signing.
    let o = SignOpts {
        tamper_signature: true,
        ..Default::default()
    };
    s.ak_with(&key, Method::GET, &topics, None, o)
        .await
        .expect_error(401, "SignatureDoesNotMatch");
    let o = SignOpts {
        wrong_secret: true,
        ..Default::default()
    };
    s.ak_with(&key, Method::GET, &topics, None, o)
        .await
        .expect_error(401, "SignatureDoesNotMatch");
    let o = SignOpts {
        tamper_body_after_signing: true,
        ..Default::default()
    };
    s.ak_with(&key, Method::POST, &topics, Some(json!({"topic": "V"})), o)
        .await
        .expect_error(401, "SignatureDoesNotMatch");

    // Stale and future timestamps (window 5 minutes), and a malformed one.
    let stale = (chrono::Utc::now() - chrono::Duration::seconds(310))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let o = SignOpts {
        date: Some(stale),
        ..Default::default()
    };
    s.ak_with(&key, Method::GET, &topics, None, o)
        .await
        .expect_error(401, "RequestExpired");
    let future = (chrono::Utc::now() + chrono::Duration::seconds(310))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let o = SignOpts {
        date: Some(future),
        ..Default::default()
    };
    s.ak_with(&key, Method::GET, &topics, None, o)
        .await
        .expect_error(401, "RequestExpired");
    let recent = (chrono::Utc::now() - chrono::Duration::seconds(240))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let o = SignOpts {
        date: Some(recent),
        ..Default::default()
    };
    s.ak_with(&key, Method::GET, &topics, None, o).await.expect(200);
    let o = SignOpts {
        date: Some("yesterday".into()),
        ..Default::default()
    };
    s.ak_with(&key, Method::GET, &topics, None, o)
        .await
        .expect_error(401, "Unauthenticated");

    // Replayed nonce.
    let o = SignOpts {
        nonce: Some("nonce-1".into()),
        ..Default::default()
    };
    s.ak_with(&key, Method::GET, &topics, None, o.clone()).await.expect(200);
    s.ak_with(&key, Method::GET, &topics, None, o)
        .await
        .expect_error(401, "NonceReplayed");

    // Unknown key; disabled key; re-enabled key; deleted key.
    let unknown = ("LTAInotakey".to_string(), key.1.clone());
    s.ak(&unknown, Method::GET, &topics, None)
        .await
        .expect_error(401, "Unauthenticated");
    let ak_path = format!("/api/v1/access-keys/{}", key.0);
    s.op(Method::PATCH, &ak_path, Some(json!({"enabled": false})))
        .await
        .expect(200);
    s.ak(&key, Method::GET, &topics, None)
        .await
        .expect_error(401, "Unauthenticated");
    s.op(Method::PATCH, &ak_path, Some(json!({"enabled": true})))
        .await
        .expect(200);
    s.ak(&key, Method::GET, &topics, None).await.expect(200);
    s.op(Method::DELETE, &ak_path, None).await.expect(204);
    s.ak(&key, Method::GET, &topics, None)
        .await
        .expect_error(401, "Unauthenticated");
}

#[tokio::test]
async fn acs3_requires_the_replay_protection_headers() {
    let s = TestServer::start().await;
    let id = s.create_instance("headers").await;
    let key = s.create_access_key(&[&id]).await;
    let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    // Signed correctly, but without the nonce among the signed headers.
    let names = vec!["host".to_string(), "x-acs-content-sha256".into(), "x-acs-date".into()];
    let hash = control_plane::auth::acs3::sha256_hex(b"");
    let path = format!("/api/v1/instances/{id}/topics");
    let values = |n: &str| match n {
        "host" => vec![s.host.clone()],
        "x-acs-content-sha256" => vec![hash.clone()],
        _ => vec![date.clone()],
    };
    let canonical = control_plane::auth::acs3::canonical_request("GET", &path, None, &names, values, &hash);
    let sig = control_plane::auth::acs3::signature(&key.1, &control_plane::auth::acs3::string_to_sign(&canonical));
    let r = s
        .http
        .get(format!("{}{path}", s.base))
        .header(
            "authorization",
            format!(
                "ACS3-HMAC-SHA256 Credential={},SignedHeaders={},Signature={sig}",
                key.0,
                names.join(";")
            ),
        )
        .header("x-acs-content-sha256", &hash)
        .header("x-acs-date", &date)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.raw(Method::GET, &path, Some("ACS3-HMAC-SHA256 garbage"), None)
        .await
        .expect_error(401, "Unauthenticated");
}
