//! A real HTTP webhook receiver for rule tests (axum on a loopback port): records every request,
//! checks its `x-mq-signature` against the shared secret as a receiver would, and answers with
//! the status the test sets (200 unless told otherwise).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::rules::{HEADER_SIGNATURE, HEADER_TIMESTAMP, verify_webhook_signature};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The signature header verified with the secret over the timestamp header and the body.
    pub signed: bool,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Clone)]
struct Shared {
    secret: String,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

pub struct Receiver {
    pub port: u16,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

async fn hook(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let ts = headers.get(HEADER_TIMESTAMP).and_then(|t| t.parse::<i64>().ok());
    let signed = match (ts, headers.get(HEADER_SIGNATURE)) {
        (Some(ts), Some(sig)) => verify_webhook_signature(s.secret.as_bytes(), ts, &body, sig),
        _ => false,
    };
    s.got.lock().unwrap().push(Received {
        headers,
        body: body.to_vec(),
        signed,
    });
    StatusCode::from_u16(s.status.load(Ordering::Relaxed)).unwrap()
}

impl Receiver {
    /// Listens on a free loopback port.
    pub async fn start(secret: &str) -> Self {
        Self::start_on(test_support::net::free_port(), secret).await
    }

    /// Listens on `port` (a test may point a rule at it before anything listens there).
    pub async fn start_on(port: u16, secret: &str) -> Self {
        let shared = Shared {
            secret: secret.to_string(),
            got: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { port, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The status every following request is answered with.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::Relaxed);
    }

    pub fn got(&self) -> Vec<Received> {
        self.shared.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} webhook requests within {secs} s",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
