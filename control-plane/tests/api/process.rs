//! The real binary: `CP_BROKER_NODES` from the environment creates node credentials at start-up, and
//! SIGTERM answers waiting long-polls at once so graceful shutdown is quick.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sync::{SNAPSHOT_PATH, node_authorization};

use crate::server::random_master_key;

#[tokio::test]
async fn env_broker_nodes_and_quick_shutdown_with_waiting_polls() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_control-plane"))
        .env("DATABASE_URL", crate::pg::fresh_database().await)
        .env("MASTER_KEY", random_master_key())
        .env("ADMIN_PASSWORD", "pw-for-process-test")
        .env("CP_LISTEN", format!("127.0.0.1:{port}"))
        .env("CP_BROKER_NODES", "node-1:secret1, node-2:secret2")
        .env("CP_CONSOLE_DIR", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "control plane did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let poll = |node: &str, secret: &str, query: &str| {
        http.get(format!("{base}{SNAPSHOT_PATH}?{query}"))
            .header("authorization", node_authorization(node, secret))
            .send()
    };
    let first = poll("node-1", "secret1", "waitSecs=0").await.unwrap();
    assert_eq!(first.status(), 200);
    let version = first.json::<serde_json::Value>().await.unwrap()["version"]
        .as_i64()
        .unwrap();
    assert_eq!(poll("node-2", "secret2", "").await.unwrap().status(), 200);
    assert_eq!(poll("node-2", "secret1", "").await.unwrap().status(), 401);

    // A poll waiting for 30 s answers 204 as soon as the server is told to stop.
    let waiting = tokio::spawn(poll("node-1", "secret1", &format!("after={version}&waitSecs=30")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stop = Instant::now();
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let answer = waiting.await.unwrap().unwrap();
    assert_eq!(answer.status(), 204);
    while child.try_wait().unwrap().is_none() {
        assert!(stop.elapsed() < Duration::from_secs(5), "shutdown held up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("SIGTERM to exit with a waiting long-poll: {:?}", stop.elapsed());
}
