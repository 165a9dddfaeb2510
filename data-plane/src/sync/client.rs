//! HTTP client of the control plane's broker-sync endpoints (docs/sync-protocol.md): one request per
//! exchange, with the node credential on every call.

use std::time::Duration;

use common::delta::{CONFIG_KIND_HEADER, Delta, KIND_DELTA};
use common::snapshot::Snapshot;
use common::sync::{
    COMMANDS_PATH, CommandBatch, EVENTS_PATH, EventBatch, HEARTBEAT_PATH, Heartbeat, SNAPSHOT_PATH, node_authorization,
};
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use thiserror::Error;

/// How long a long-poll waits on the control plane before it answers "no change".
pub const WAIT_SECS: u64 = 30;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("control plane unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("control plane refused the node credential (401)")]
    Unauthenticated,
    #[error("control plane answered {0}")]
    Status(StatusCode),
    #[error("control plane answer unreadable: {0}")]
    Body(#[source] reqwest::Error),
    #[error("control plane answer is not a snapshot: {0}")]
    Json(#[source] serde_json::Error),
}

/// A configuration document as fetched: parsed, and the bytes the control plane sent (kept in the
/// last-known-good cache as they are, rather than serialized again).
pub struct Fetched {
    pub config: Config,
    pub raw: bytes::Bytes,
}

/// The whole configuration, or what changed since the broker's version.
pub enum Config {
    Snapshot(Snapshot),
    Delta(Delta),
}

impl Config {
    pub fn version(&self) -> i64 {
        match self {
            Self::Snapshot(s) => s.version,
            Self::Delta(d) => d.version,
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    authorization: String,
    node_id: String,
}

impl Client {
    /// A client of the control plane at `base`; `extra_ca` is trusted besides the system's
    /// certificate authorities for https.
    pub fn new(
        base: &str,
        extra_ca: &[reqwest::Certificate],
        node_id: &str,
        node_secret: &str,
    ) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Long polls last up to WAIT_SECS; anything much longer is a dead connection.
            .timeout(Duration::from_secs(WAIT_SECS + 15));
        for cert in extra_ca {
            builder = builder.add_root_certificate(cert.clone());
        }
        let http = builder.build().map_err(ClientError::Unreachable)?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            authorization: node_authorization(node_id, node_secret),
            node_id: node_id.to_string(),
        })
    }

    /// The node this client speaks for.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .header(AUTHORIZATION, &self.authorization)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header(AUTHORIZATION, &self.authorization)
    }

    /// `Some(configuration)` when the control plane has another version than `after`, `None` when
    /// the poll ended without change. With `deltas` the answer may be a delta from `after`.
    pub async fn snapshot(
        &self,
        after: Option<i64>,
        wait_secs: u64,
        deltas: bool,
    ) -> Result<Option<Fetched>, ClientError> {
        let mut req = self.get(SNAPSHOT_PATH).query(&[("waitSecs", wait_secs)]);
        if let Some(v) = after {
            req = req.query(&[("after", v)]);
        }
        if deltas {
            req = req.query(&[("deltas", true)]);
        }
        let res = checked(req.send().await)?;
        if res.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let is_delta = res
            .headers()
            .get(CONFIG_KIND_HEADER)
            .is_some_and(|k| k.as_bytes() == KIND_DELTA.as_bytes());
        let raw = res.bytes().await.map_err(ClientError::Body)?;
        let config = if is_delta {
            Config::Delta(serde_json::from_slice(&raw).map_err(ClientError::Json)?)
        } else {
            Config::Snapshot(serde_json::from_slice(&raw).map_err(ClientError::Json)?)
        };
        Ok(Some(Fetched { config, raw }))
    }

    pub async fn heartbeat(&self, beat: &Heartbeat) -> Result<(), ClientError> {
        let req = self.post(HEARTBEAT_PATH).timeout(Duration::from_secs(5)).json(beat);
        checked(req.send().await).map(drop)
    }

    pub async fn events(&self, batch: &EventBatch) -> Result<(), ClientError> {
        let req = self.post(EVENTS_PATH).timeout(Duration::from_secs(10)).json(batch);
        checked(req.send().await).map(drop)
    }

    pub async fn dead_letters(&self, batch: &common::rules::DeadLetterBatch) -> Result<(), ClientError> {
        let req = self
            .post(common::sync::DEAD_LETTERS_PATH)
            .timeout(Duration::from_secs(10))
            .json(batch);
        checked(req.send().await).map(drop)
    }

    pub async fn command_result(&self, result: &common::rules::TestResult) -> Result<(), ClientError> {
        let req = self
            .post(common::sync::COMMAND_RESULTS_PATH)
            .timeout(Duration::from_secs(10))
            .json(result);
        checked(req.send().await).map(drop)
    }

    pub async fn trace_answer(&self, answer: &common::sync::TraceAnswer) -> Result<(), ClientError> {
        let req = self
            .post(common::sync::TRACE_ANSWERS_PATH)
            .timeout(Duration::from_secs(10))
            .json(answer);
        checked(req.send().await).map(drop)
    }

    /// `after = None` learns the current sequence number (no commands); otherwise long-polls.
    pub async fn commands(&self, after: Option<i64>, wait_secs: u64) -> Result<CommandBatch, ClientError> {
        let mut req = self.get(COMMANDS_PATH);
        if let Some(seq) = after {
            req = req.query(&[("after", seq)]).query(&[("waitSecs", wait_secs)]);
        }
        let res = checked(req.send().await)?;
        res.json().await.map_err(ClientError::Body)
    }
}

fn checked(res: Result<reqwest::Response, reqwest::Error>) -> Result<reqwest::Response, ClientError> {
    let res = res.map_err(ClientError::Unreachable)?;
    match res.status() {
        s if s.is_success() => Ok(res),
        StatusCode::UNAUTHORIZED => Err(ClientError::Unauthenticated),
        s => Err(ClientError::Status(s)),
    }
}
