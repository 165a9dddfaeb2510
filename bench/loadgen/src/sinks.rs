//! Where the broker's rules deliver during the `rules` scenario, run inside loadgen so that they
//! share its clock: a webhook receiver (axum, answers 200) and a subscriber of a NATS subject. Both
//! take the rules' JSON envelope, decode the loadgen payload in it and track latency and loss
//! exactly like an MQTT subscriber does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use crate::tracker::Tracker;

/// One receiver of rule deliveries.
pub struct Sink {
    pub name: &'static str,
    tracker: Arc<Mutex<Tracker>>,
    task: tokio::task::JoinHandle<()>,
}

/// What one sink saw, in the report.
#[derive(Debug, Serialize)]
pub struct SinkReport {
    pub name: String,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Requests or messages that were not a loadgen message (should stay 0).
    pub foreign: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// The loadgen payload inside a rule's JSON envelope (`payload`, Base64).
fn payload_of(body: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    base64::engine::general_purpose::STANDARD
        .decode(v.get("payload")?.as_str()?)
        .ok()
}

fn record(tracker: &Mutex<Tracker>, body: &[u8]) {
    let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
    match payload_of(body) {
        Some(p) => t.record(&p),
        None => t.foreign += 1,
    }
}

impl Sink {
    /// A webhook receiver on `listen` that takes `POST /hook` and answers 200.
    pub async fn webhook(listen: SocketAddr) -> Result<Self> {
        let tracker: Arc<Mutex<Tracker>> = Arc::default();
        let t = tracker.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let t = t.clone();
                async move {
                    record(&t, &body);
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("webhook receiver on {listen}"))?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("webhook receiver: {e}");
            }
        });
        Ok(Self {
            name: "webhook",
            tracker,
            task,
        })
    }

    /// A subscriber of `subject` on the NATS server at `url`, subscribed when this returns.
    pub async fn nats(url: &str, subject: &str) -> Result<Self> {
        let client = async_nats::connect(url)
            .await
            .with_context(|| format!("NATS at {url}"))?;
        let mut sub = client.subscribe(subject.to_string()).await?;
        client.flush().await?;
        let tracker: Arc<Mutex<Tracker>> = Arc::default();
        let t = tracker.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            while let Some(m) = sub.next().await {
                record(&t, &m.payload);
            }
        });
        Ok(Self {
            name: "nats",
            tracker,
            task,
        })
    }

    fn unique(&self) -> u64 {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner()).unique()
    }

    /// Waits until `expected` distinct messages arrived, `deadline` passes, or nothing new arrived
    /// for `idle`.
    pub async fn wait(&self, expected: u64, deadline: Instant, idle: Duration) {
        let (mut last, mut last_change) = (self.unique(), Instant::now());
        while last < expected && Instant::now() < deadline && last_change.elapsed() < idle {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let now = self.unique();
            if now != last {
                (last, last_change) = (now, Instant::now());
            }
        }
    }

    pub fn report(&self, expected: u64) -> SinkReport {
        let t = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
        let delivered = t.unique();
        SinkReport {
            name: self.name.into(),
            expected,
            delivered,
            lost: expected.saturating_sub(delivered),
            duplicates: t.duplicates,
            foreign: t.foreign,
            p50_us: t.latency_us.value_at_quantile(0.50),
            p99_us: t.latency_us.value_at_quantile(0.99),
            max_us: t.latency_us.max(),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_loadgen_payload_out_of_a_rule_envelope() {
        let p = crate::payload::encode(7, 3);
        let body = serde_json::json!({
            "ruleId": "rule-0000000000000001",
            "payload": base64::engine::general_purpose::STANDARD.encode(&p),
        });
        let t = Mutex::new(Tracker::default());
        record(&t, body.to_string().as_bytes());
        record(&t, b"not json");
        let t = t.into_inner().unwrap();
        assert_eq!((t.unique(), t.foreign), (1, 1));
        assert_eq!(payload_of(body.to_string().as_bytes()), Some(p));
    }
}
