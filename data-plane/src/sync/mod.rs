//! The broker's link to the control plane (docs/sync-protocol.md): snapshot long-poll with a
//! last-known-good cache, status heartbeats, client events and broadcast commands. It runs on a
//! tokio runtime of its own thread, so a slow or absent control plane never touches MQTT traffic.

pub mod backoff;
pub mod client;
pub mod commands;
pub mod events;
pub mod heartbeat;
pub mod lkg;
pub mod watch;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use thiserror::Error;
use tokio::sync::Notify;

use crate::config::Config;
use crate::core::Broker;

/// What the link needs from the configuration.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub url: String,
    /// Certificate authorities trusted besides the system's (`--control-plane-ca`).
    pub extra_ca: Vec<reqwest::Certificate>,
    pub node_id: String,
    pub node_secret: String,
    /// Last-known-good cache (`--snapshot`).
    pub cache: PathBuf,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LinkConfigError {
    #[error("control_plane_url is set but node_id is missing")]
    NodeId,
    #[error("control_plane_url is set but node_secret is missing")]
    NodeSecret,
    #[error("control_plane_url must start with http:// or https://")]
    Scheme,
    #[error("control_plane_ca {0}: {1}")]
    Ca(String, String),
}

impl LinkConfig {
    /// `None` without a control-plane URL: the broker then serves a static snapshot file.
    pub fn from_config(cfg: &Config) -> Result<Option<Self>, LinkConfigError> {
        let Some(url) = cfg.control_plane_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(LinkConfigError::Scheme);
        }
        // Read and parsed here, so that a bad file stops the start.
        let extra_ca = match &cfg.control_plane_ca {
            Some(path) => {
                let refused = |why: String| LinkConfigError::Ca(path.display().to_string(), why);
                let pem = std::fs::read(path).map_err(|e| refused(e.to_string()))?;
                reqwest::Certificate::from_pem_bundle(&pem)
                    .ok()
                    .filter(|certs| !certs.is_empty())
                    .ok_or_else(|| refused("no PEM certificate in it".into()))?
            }
            None => Vec::new(),
        };
        let node_id = cfg
            .node_id
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or(LinkConfigError::NodeId)?;
        let node_secret = cfg
            .node_secret
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or(LinkConfigError::NodeSecret)?;
        Ok(Some(Self {
            url: url.to_string(),
            extra_ca,
            node_id,
            node_secret,
            cache: cfg.snapshot.clone(),
        }))
    }
}

/// State the link's tasks share (what the heartbeat reports).
pub struct LinkState {
    /// Random per process start (the control plane drops the node's old client list on a change).
    pub boot_id: String,
    pub started_at_ms: i64,
    /// Why the last snapshot was refused; cleared by the next applied one.
    refused: Mutex<Option<String>>,
    /// Why the last exchange with the control plane failed; cleared by the next success.
    fetch: Mutex<Option<String>>,
    /// Asks for a heartbeat now (after a swap, so the control plane sees the node in sync at once).
    pub beat_now: Notify,
}

impl LinkState {
    pub fn new() -> Self {
        Self {
            boot_id: hex::encode(rand::random::<[u8; 16]>()),
            started_at_ms: common::time::now_ms(),
            refused: Mutex::new(None),
            fetch: Mutex::new(None),
            beat_now: Notify::new(),
        }
    }

    pub fn set_refused(&self, err: Option<String>) {
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = err;
    }

    pub fn set_fetch_error(&self, err: Option<String>) {
        *self.fetch.lock().unwrap_or_else(|p| p.into_inner()) = err;
    }

    /// A refusal matters more than a transient fetch failure, so it wins.
    pub fn last_error(&self) -> Option<String> {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner()).clone();
        refused.or_else(|| self.fetch.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl Default for LinkState {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts the link on its own thread. The event subscription is taken here, before returning, so
/// no connect of the first clients is missed.
pub fn spawn(
    cfg: LinkConfig,
    broker: Arc<Broker>,
    prometheus: PrometheusHandle,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> anyhow::Result<()> {
    let client = Arc::new(client::Client::new(
        &cfg.url,
        &cfg.extra_ca,
        &cfg.node_id,
        &cfg.node_secret,
    )?);
    let state = Arc::new(LinkState::new());
    let events_rx = broker.events.subscribe();
    tracing::info!(url = %cfg.url, node_id = %cfg.node_id, boot_id = %state.boot_id, "control-plane link");
    std::thread::Builder::new()
        .name("cp-sync".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(error = %e, "cannot start the control-plane link runtime"),
            };
            rt.block_on(async move {
                let buffer = Arc::new(events::Buffer::default());
                tokio::spawn(events::collect(events_rx, buffer.clone()));
                tokio::spawn(events::forward(client.clone(), state.clone(), buffer));
                if let Some(rules) = broker.rules() {
                    tokio::spawn(dead_letters(client.clone(), state.clone(), rules.dead.clone()));
                }
                tokio::spawn(commands::run(client.clone(), broker.clone(), cluster.clone()));
                tokio::spawn(heartbeat::run(
                    client.clone(),
                    state.clone(),
                    broker.clone(),
                    prometheus,
                    cluster,
                ));
                watch::run(client, state, broker, cfg.cache).await;
            });
        })
        .context("starting the control-plane link thread")?;
    Ok(())
}

/// Sends rules' dead letters to the control plane in batches; kept (bounded) while it is away.
async fn dead_letters(client: Arc<client::Client>, state: Arc<LinkState>, dead: Arc<crate::rules::dead::DeadLetters>) {
    dead.report();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let letters = dead.take(500);
        if letters.is_empty() {
            continue;
        }
        let batch = common::rules::DeadLetterBatch {
            boot_id: state.boot_id.clone(),
            letters,
        };
        if let Err(e) = client.dead_letters(&batch).await {
            crate::metrics::sync_error("dead_letters");
            tracing::debug!(error = %e, "dead letters not sent");
            dead.put_back(batch.letters);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_config_needs_url_id_and_secret() {
        let mut cfg = Config::default();
        assert_eq!(LinkConfig::from_config(&cfg).map(|l| l.is_some()), Ok(false));
        cfg.control_plane_url = Some("http://cp:8080".into());
        assert_eq!(LinkConfig::from_config(&cfg).err(), Some(LinkConfigError::NodeId));
        cfg.node_id = Some("node-1".into());
        assert_eq!(LinkConfig::from_config(&cfg).err(), Some(LinkConfigError::NodeSecret));
        cfg.node_secret = Some("s".into());
        let link = LinkConfig::from_config(&cfg).unwrap().unwrap();
        assert_eq!((link.node_id.as_str(), link.cache), ("node-1", cfg.snapshot.clone()));
        cfg.control_plane_url = Some("https://cp".into());
        assert!(LinkConfig::from_config(&cfg).is_ok());
        cfg.control_plane_url = Some("ftp://cp".into());
        assert_eq!(LinkConfig::from_config(&cfg).err(), Some(LinkConfigError::Scheme));
    }

    #[test]
    fn a_control_plane_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            control_plane_url: Some("https://cp".into()),
            node_id: Some("n".into()),
            node_secret: Some("s".into()),
            ..Config::default()
        };
        cfg.control_plane_ca = Some(dir.path().join("missing.pem"));
        assert!(matches!(LinkConfig::from_config(&cfg), Err(LinkConfigError::Ca(..))));
        std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
        cfg.control_plane_ca = Some(dir.path().join("junk.pem"));
        assert!(matches!(LinkConfig::from_config(&cfg), Err(LinkConfigError::Ca(..))));
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ca.pem");
        cfg.control_plane_ca = Some(ca.into());
        let link = LinkConfig::from_config(&cfg).unwrap().unwrap();
        assert_eq!(link.extra_ca.len(), 1);
    }
}
