//! PostgreSQL outage: with the database stopped, requests answer 503 `ServiceUnavailable` with
//! `Retry-After` within about a second (the pool's acquire timeout), not a 500 after seconds; when it
//! is back the same server answers 200 again without a restart. Runs on a PostgreSQL of its own, since
//! stopping the shared one would break the other tests.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use test_support::pg::{OwnCluster, fresh_database_on};

use crate::server::TestServer;

#[tokio::test]
async fn a_stopped_database_answers_503_fast_and_recovery_is_automatic() {
    let cluster = OwnCluster::start();
    let s = TestServer::start_on(fresh_database_on(&cluster.admin_url()).await, |_| {}).await;
    let id = s.create_instance("outage").await;
    s.create_topic(&id, "T").await;
    let key = s.create_access_key(&[&id]).await;
    s.op(Method::GET, "/api/v1/instances", None).await.expect(200);

    cluster.stop();
    let topics = format!("/api/v1/instances/{id}/topics");
    let login = json!({"username": "admin", "password": "whatever"});
    let mut worst = Duration::ZERO;
    for what in ["operator read", "operator write", "signed request", "login"] {
        let started = Instant::now();
        let reply = match what {
            "operator read" => s.op(Method::GET, "/api/v1/instances", None).await,
            "operator write" => s.op(Method::POST, &topics, Some(json!({"topic": "U"}))).await,
            "signed request" => s.ak(&key, Method::GET, &topics, None).await,
            _ => s.raw(Method::POST, "/api/v1/login", None, Some(login.clone())).await,
        };
        let latency = started.elapsed();
        let retry_after = reply
            .headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        reply.expect_error(503, "ServiceUnavailable");
        assert_eq!(retry_after.as_deref(), Some("1"), "{what}: Retry-After");
        assert!(latency < Duration::from_secs(2), "{what}: 503 took {latency:?}");
        worst = worst.max(latency);
    }
    let ready = s.http.get(format!("{}/readyz", s.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    println!("database down: every request answered 503 within {worst:?}");

    cluster.restart();
    let back = Instant::now();
    loop {
        let reply = s.op(Method::GET, "/api/v1/instances", None).await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "while recovering: {:?}", reply.body);
        assert!(back.elapsed() < Duration::from_secs(10), "no recovery after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("database back: 200 after {:?}", back.elapsed());
    s.ak(&key, Method::GET, &topics, None).await.expect(200);
    s.op(Method::POST, &topics, Some(json!({"topic": "U"})))
        .await
        .expect(201);
}
