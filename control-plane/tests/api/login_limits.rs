//! Login limits over real HTTP: per client address (every attempt), per username (failures), 429
//! `TooManyRequests` with `Retry-After`; and a cap on concurrent password hashes, beyond which logins
//! answer 503 `ServerBusy` at once instead of queueing.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::server::{ADMIN_PASSWORD, Reply, TestServer};

async fn login(s: &TestServer, username: &str, password: &str) -> Reply {
    s.raw(
        Method::POST,
        "/api/v1/login",
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await
}

fn retry_after(reply: &Reply) -> u64 {
    reply.headers["retry-after"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn attempts_per_address_are_limited() {
    // 3 a minute; the test server's own login at start used one.
    let s = TestServer::start_with(|c| c.login_attempts_per_minute = 3).await;
    let mut failures = 0;
    let limited = loop {
        let reply = login(&s, &format!("user-{failures}"), "wrong").await;
        if reply.status == 429 {
            break reply;
        }
        reply.expect_error(401, "Unauthenticated");
        failures += 1;
        assert!(failures <= 3, "no limit after {failures} attempts");
    };
    assert_eq!(failures, 2);
    let wait = retry_after(&limited);
    assert!((1..=20).contains(&wait), "Retry-After {wait}");
    limited.expect_error(429, "TooManyRequests");
    // The right password does not get through either: the address is limited, not the answer.
    login(&s, "admin", ADMIN_PASSWORD)
        .await
        .expect_error(429, "TooManyRequests");
}

#[tokio::test]
async fn failures_per_username_are_limited() {
    let s = TestServer::start_with(|c| c.login_failures_per_minute = 2).await;
    login(&s, "admin", "wrong").await.expect_error(401, "Unauthenticated");
    login(&s, "admin", "wrong").await.expect_error(401, "Unauthenticated");
    let limited = login(&s, "admin", ADMIN_PASSWORD).await;
    let wait = retry_after(&limited);
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    let body = limited.expect_error(429, "TooManyRequests");
    assert!(body["message"].as_str().unwrap().contains("retry after"), "{body:?}");
    // Other usernames are not affected; successes do not count.
    login(&s, "someone-else", "wrong")
        .await
        .expect_error(401, "Unauthenticated");
    let s = TestServer::start_with(|c| c.login_failures_per_minute = 2).await;
    for _ in 0..4 {
        login(&s, "admin", ADMIN_PASSWORD).await.expect(200);
    }
}

#[tokio::test]
async fn concurrent_hashes_are_capped_and_the_rest_answer_at_once() {
    let s = TestServer::start_with(|c| {
        c.login_max_concurrent_hashes = 1;
        c.login_attempts_per_minute = 1000;
    })
    .await;
    let one = Instant::now();
    login(&s, "admin", "wrong").await.expect_error(401, "Unauthenticated");
    let hash_time = one.elapsed();
    let attempts = (0..24).map(|i| {
        let s = &s;
        async move {
            let started = Instant::now();
            let reply = login(s, &format!("u{i}"), "wrong").await;
            (reply, started.elapsed())
        }
    });
    let replies = futures_join_all(attempts).await;
    let (mut busy, mut checked) = (0, 0);
    let mut slowest_busy = Duration::ZERO;
    for (reply, took) in replies {
        if reply.status == 503 {
            assert_eq!(retry_after(&reply), 1);
            let body: Value = reply.expect_error(503, "ServerBusy");
            assert!(!body["message"].as_str().unwrap().is_empty());
            busy += 1;
            slowest_busy = slowest_busy.max(took);
        } else {
            reply.expect_error(401, "Unauthenticated");
            checked += 1;
        }
    }
    println!(
        "24 concurrent logins, 1 hash at a time: {checked} checked, {busy} refused at once (slowest refusal {slowest_busy:?}; one login alone {hash_time:?})"
    );
    assert!(busy > 0 && checked > 0, "busy {busy}, checked {checked}");
}

/// Runs the futures concurrently on this task and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}
