//! A real HTTP webhook receiver for rule tests (axum on a loopback port): records every request,
//! checks its `x-mq-signature` against the shared secret as a receiver would, and answers with
//! the status the test sets (200 unless told otherwise). The signature is checked here with its
//! own HMAC code, not the broker's, so a test can catch a broker that signs wrongly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header with the request's Unix time in milliseconds.
pub const HEADER_TIMESTAMP: &str = "x-mq-timestamp";
/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const HEADER_SIGNATURE: &str = "x-mq-signature";

/// Whether `header` is the documented signature of `body` sent at `timestamp_ms`.
pub fn signature_ok(secret: &[u8], timestamp_ms: i64, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("v1=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

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
    /// Statuses for the requests about one client (`clientId` of a JSON body, or the
    /// `x-mq-client-id` header), instead of `status`.
    status_of: Arc<Mutex<HashMap<String, u16>>>,
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
        (Some(ts), Some(sig)) => signature_ok(s.secret.as_bytes(), ts, &body, sig),
        _ => false,
    };
    let client = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["clientId"].as_str().map(str::to_string))
        .or_else(|| headers.get("x-mq-client-id").cloned());
    let status = client
        .and_then(|c| s.status_of.lock().unwrap().get(&c).copied())
        .unwrap_or_else(|| s.status.load(Ordering::Relaxed));
    s.got.lock().unwrap().push(Received {
        headers,
        body: body.to_vec(),
        signed,
    });
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    /// Listens on a free loopback port.
    pub async fn start(secret: &str) -> Self {
        Self::start_on(crate::net::free_port(), secret).await
    }

    /// Listens on `port` (a test may point a rule at it before anything listens there).
    pub async fn start_on(port: u16, secret: &str) -> Self {
        let shared = Shared {
            secret: secret.to_string(),
            got: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            status_of: Arc::default(),
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

    /// The status every following request about `client_id` is answered with.
    pub fn answer_client(&self, client_id: &str, status: u16) {
        self.shared
            .status_of
            .lock()
            .unwrap()
            .insert(client_id.to_string(), status);
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

#[cfg(test)]
mod tests {
    use super::signature_ok;

    #[test]
    fn signature_matches_an_independently_computed_hmac() {
        // Python: hmac.new(b"s3cret", b'1700000000000.{"a":1}', hashlib.sha256).hexdigest()
        let sig = "v1=8a6f992378d0d47b6fcdf1cc8d72e46ba5c789b2c9d3a538be31fe07d598ba6d";
        assert!(signature_ok(b"s3cret", 1_700_000_000_000, b"{\"a\":1}", sig));
        assert!(!signature_ok(b"other", 1_700_000_000_000, b"{\"a\":1}", sig));
        assert!(!signature_ok(b"s3cret", 1_700_000_000_001, b"{\"a\":1}", sig));
        assert!(!signature_ok(b"s3cret", 1_700_000_000_000, b"{\"a\":1}", &sig[3..]));
    }
}
