//! HTTP limits, over raw TCP where a well-behaved client cannot show them: a client that never
//! finishes its headers is cut off (header timeout), a kept-alive connection without requests is
//! closed (idle timeout) but not by the header timeout, connections over the cap get 503
//! `TooManyConnections`, a request that takes too long answers 503 `RequestTimeout`, and oversize
//! bodies answer 413 without being read whole (signed requests have their signature checked before
//! any of the body is read). The largest legitimate requests fit their limits (sizes printed).

use std::time::{Duration, Instant};

use base64::Engine;
use control_plane::auth::acs3;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::{SignOpts, TestServer, now_ms};

async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(&s.host).await.unwrap()
}

/// Reads one answer's head (status line and headers); empty when the server closed first.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    });
    read.await.expect("an answer or a close within 10 s");
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads one whole answer with a `content-length` body; returns the head and the body.
async fn read_answer(stream: &mut TcpStream) -> (String, String) {
    let head = read_head(stream).await;
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    (head, String::from_utf8(body).unwrap())
}

/// Waits until the server closes the connection; returns how long that took from `since`.
async fn closed_after(stream: &mut TcpStream, since: Instant, within: Duration) -> Duration {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return since.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the connection was still open after {within:?}"))
}

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n";

#[tokio::test]
async fn slow_headers_are_cut_off_and_idle_connections_closed() {
    let s = TestServer::start_with(|c| {
        c.http_header_timeout_secs = 1;
        c.http_idle_timeout_secs = 3;
    })
    .await;

    // Slowloris: a header line every 200 ms, never the blank line that ends the head.
    let mut slow = connect(&s).await;
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n").await.unwrap();
    let dripping = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(format!("x-drip-{i}: y\r\n").as_bytes()).await.is_err() {
                return started.elapsed();
            }
            let mut buf = [0u8; 64];
            if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
                return started.elapsed();
            }
        }
        unreachable!()
    };
    let cut = tokio::time::timeout(Duration::from_secs(5), dripping)
        .await
        .expect("a client that never finishes its headers must be cut off");
    assert!(cut >= Duration::from_millis(900), "cut too early: {cut:?}");
    println!("slowloris cut off after {cut:?} (header timeout 1 s)");

    // A connection that never sends anything is cut off by the header timeout too.
    let mut silent = connect(&s).await;
    let took = closed_after(&mut silent, Instant::now(), Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Kept alive between requests: idle for 2 s (past the 1 s header timeout) it still serves; idle for
    // the 3 s idle timeout it is closed.
    let mut kept = connect(&s).await;
    kept.write_all(GET_HEALTHZ).await.unwrap();
    assert!(read_answer(&mut kept).await.0.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    kept.write_all(GET_HEALTHZ).await.unwrap();
    assert!(read_answer(&mut kept).await.0.starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    let idle = closed_after(&mut kept, answered, Duration::from_secs(6)).await;
    assert!(idle >= Duration::from_millis(2900), "closed too early: {idle:?}");
    println!("idle connection closed {idle:?} after its last answer (idle timeout 3 s)");
}

#[tokio::test]
async fn connections_over_the_cap_get_503() {
    let s = TestServer::start_with(|c| c.http_max_connections = 2).await;
    // The test client's own pooled connection may hold one of the two.
    let mut held = Vec::new();
    let refused = loop {
        assert!(held.len() < 3, "more than 2 connections were served at once");
        let mut c = connect(&s).await;
        c.write_all(GET_HEALTHZ).await.unwrap();
        let (head, body) = read_answer(&mut c).await;
        if head.starts_with("HTTP/1.1 503") {
            break (head, body);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(c);
    };
    let (head, body) = refused;
    assert!(head.to_ascii_lowercase().contains("retry-after: 1"), "{head}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "TooManyConnections");
    // A freed slot serves again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = connect(&s).await;
    c.write_all(GET_HEALTHZ).await.unwrap();
    assert!(read_answer(&mut c).await.0.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_request_that_takes_too_long_answers_503() {
    let s = TestServer::start_with(|c| c.http_request_timeout_secs = 1).await;
    let id = s.create_instance("slow").await;
    // Another session holds the instance row, so UpdateInstance waits for its lock.
    let mut blocker = s.state.db.begin().await.unwrap();
    sqlx::query("select 1 from instances where id = $1 for update")
        .bind(&id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let started = Instant::now();
    let reply = s
        .op(
            Method::PATCH,
            &format!("/api/v1/instances/{id}"),
            Some(json!({"description": "x"})),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    reply.expect_error(503, "RequestTimeout");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    blocker.rollback().await.unwrap();
    // The cancelled request changed nothing and left nothing locked.
    let got = s
        .op(Method::GET, &format!("/api/v1/instances/{id}"), None)
        .await
        .expect(200);
    assert_eq!(got["description"], "");
    s.op(
        Method::PATCH,
        &format!("/api/v1/instances/{id}"),
        Some(json!({"description": "y"})),
    )
    .await
    .expect(200);
}

/// Writes a signed POST head for a body with SHA-256 `hash`, with `framing` as its length header.
async fn signed_head(
    s: &TestServer,
    key: &(String, String),
    path: &str,
    hash: &str,
    framing: &str,
    o: &SignOpts,
) -> TcpStream {
    let mut head = format!("POST {path} HTTP/1.1\r\n{framing}\r\n");
    for (name, value) in s.signed_headers(key, "POST", path, hash, o) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut c = connect(s).await;
    c.write_all(head.as_bytes()).await.unwrap();
    c
}

#[tokio::test]
async fn oversize_bodies_are_refused_without_being_read_whole() {
    let s = TestServer::start().await;
    let id = s.create_instance("big").await;
    let key = s.create_access_key(&[&id]).await;
    let path = format!("/api/v1/instances/{id}/topics");
    let big = vec![b'a'; 8 << 20];
    let hash = acs3::sha256_hex(&big);

    // Declared 8 MiB, validly signed, and not one byte of it sent: 413 at once.
    let mut c = signed_head(&s, &key, &path, &hash, "content-length: 8388608", &SignOpts::default()).await;
    let (head, body) = read_answer(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(body.contains("PayloadTooLarge"), "{body}");

    // Chunked (no declared length): the server stops reading at its limit. We send just past it
    // (1.5 MiB of the 8) and never finish the body; the 413 comes anyway.
    let mut c = signed_head(
        &s,
        &key,
        &path,
        &hash,
        "transfer-encoding: chunked",
        &SignOpts::default(),
    )
    .await;
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..24 {
        if c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || c.write_all(&chunk).await.is_err()
            || c.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let (head, _) = read_answer(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // A wrong signature is refused from the headers alone: the declared body is never waited for.
    let wrong = SignOpts {
        wrong_secret: true,
        ..Default::default()
    };
    let mut c = signed_head(&s, &key, &path, &acs3::sha256_hex(b"{}"), "content-length: 2", &wrong).await;
    let (head, body) = tokio::time::timeout(Duration::from_secs(3), read_answer(&mut c))
        .await
        .expect("answered without the body");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");

    // Bearer requests: every route's body is bounded (64 KiB but SendMessage).
    let description = "d".repeat(64 * 1024);
    s.op(
        Method::POST,
        &path,
        Some(json!({"topic": "T", "description": description})),
    )
    .await
    .expect_error(413, "PayloadTooLarge");
}

#[tokio::test]
async fn largest_requests_fit_their_body_limits() {
    let s = TestServer::start().await;
    let id = s.create_instance("largest").await;
    s.op(
        Method::PATCH,
        &format!("/api/v1/instances/{id}"),
        Some(json!({"quotas": {"maxMessageSize": 1 << 20, "maxTopicLength": 1024, "maxTokenResources": 1000}})),
    )
    .await
    .expect(200);
    s.create_topic(&id, "T").await;
    let key = s.create_access_key(&[&id]).await;

    // SendMessage: the largest payload any instance allows, in Base64, on a 1024-character topic.
    let topic = format!("T/{}", "t".repeat(1022));
    let payload = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 1 << 20]);
    let send = json!({"topic": topic, "payload": payload, "base64": true, "qos": 1});
    let size = serde_json::to_vec(&send).unwrap().len();
    s.ak(
        &key,
        Method::POST,
        &format!("/api/v1/instances/{id}/messages"),
        Some(send),
    )
    .await
    .expect(200);
    println!("largest SendMessage body: {size} bytes (limit 1,406,296)");

    // ApplyToken: as many 64-character resources as still give a token that fits an MQTT password.
    let mut n = 800;
    let (size, token_len) = loop {
        let resources: Vec<String> = (0..n).map(|i| format!("T/{i:04}{}", "r".repeat(58))).collect();
        let body = json!({"resources": resources.join(","), "actions": "R,W", "accessKeyId": key.0,
            "expireTime": now_ms() + 3_600_000});
        let size = serde_json::to_vec(&body).unwrap().len();
        let reply = s
            .ak(
                &key,
                Method::POST,
                &format!("/api/v1/instances/{id}/tokens"),
                Some(body),
            )
            .await;
        if reply.status == 200 {
            break (size, reply.body["token"].as_str().unwrap().len());
        }
        reply.expect_invalid("resources");
        n -= 5;
    };
    assert!(size < 64 * 1024);
    println!("largest ApplyToken body: {size} bytes ({n} resources, token {token_len} bytes; limit 65,536)");
}
