//! Broker configuration: defaults, then an optional TOML file, then `BROKER_*` environment variables,
//! then command-line flags (clap), so `broker --help` lists every option.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Command line. Every flag also reads `BROKER_<NAME>`; a TOML file may set the same keys.
#[derive(Debug, Parser, Serialize)]
#[command(name = "broker", version, about = "MQTT 3.1.1/5 broker of the managed MQTT service")]
pub struct Args {
    /// TOML configuration file (keys as the long flags with '_' instead of '-').
    #[arg(long, env = "BROKER_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// MQTT TCP listener address.
    #[arg(long, env = "BROKER_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// MQTT over WebSocket listener (path /mqtt); off unless set.
    #[arg(long, env = "BROKER_WS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_listen: Option<SocketAddr>,
    /// MQTT over TLS listener (needs --tls-cert and --tls-key); off unless set.
    #[arg(long, env = "BROKER_TLS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_listen: Option<SocketAddr>,
    /// MQTT over secure WebSocket listener (path /mqtt, same certificate as TLS); off unless set.
    #[arg(long, env = "BROKER_WSS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wss_listen: Option<SocketAddr>,
    /// PEM certificate chain of the TLS listener.
    #[arg(long, env = "BROKER_TLS_CERT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the TLS listener.
    #[arg(long, env = "BROKER_TLS_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// HTTP listener for /metrics, /healthz and the online-status query /route/clientId/get.
    #[arg(long, env = "BROKER_HTTP_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<SocketAddr>,
    /// Snapshot JSON file with the instances this broker serves (re-read on SIGHUP); with
    /// --control-plane-url, the last-known-good cache the broker writes and starts from.
    #[arg(long, env = "BROKER_SNAPSHOT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<PathBuf>,
    /// Directory of the embedded store (persistent sessions, offline messages).
    #[arg(long, env = "BROKER_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, env = "BROKER_WORKERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Largest MQTT frame accepted at all, in bytes (per-instance message size is checked after).
    #[arg(long, env = "BROKER_MAX_FRAME_SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_frame_size: Option<u32>,
    /// QoS 1/2 messages in flight per client (also capped by the client's receive maximum).
    #[arg(long, env = "BROKER_MAX_INFLIGHT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inflight: Option<u16>,
    /// Messages queued in memory per online client beyond its in-flight window (clean sessions and
    /// QoS 0); past it messages are dropped and counted. Persistent sessions queue QoS 1/2 on disk.
    #[arg(long, env = "BROKER_MAX_QUEUED_MESSAGES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_messages: Option<usize>,
    /// Bytes (topic + payload) queued in memory per online client; past it messages are dropped and
    /// counted, so a client that stops reading costs at most this much memory.
    #[arg(long, env = "BROKER_MAX_QUEUED_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_bytes: Option<usize>,
    /// Seconds between housekeeping passes: expiry of persistent sessions, and of offline and
    /// retained messages past their instance's retention.
    #[arg(long, env = "BROKER_HOUSEKEEPING_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub housekeeping_secs: Option<u64>,
    /// Development listener WITHOUT authentication (off unless set). Never expose it.
    #[arg(long, env = "BROKER_DEV_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_listen: Option<SocketAddr>,
    /// Instance id that clients of the development listener belong to.
    #[arg(long, env = "BROKER_DEV_INSTANCE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_instance: Option<String>,
    /// Control-plane base URL (http://cp:8080, or https:// behind a TLS-terminating proxy). When set,
    /// the broker long-polls its configuration from there and --snapshot is the last-known-good
    /// cache it writes.
    #[arg(long, env = "BROKER_CONTROL_PLANE_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane_url: Option<String>,
    /// PEM file of certificate authorities to trust for an https:// control-plane URL, in addition
    /// to the system's (for a private CA).
    #[arg(long, env = "BROKER_CONTROL_PLANE_CA")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane_ca: Option<PathBuf>,
    /// This broker's node id at the control plane (needed with --control-plane-url).
    #[arg(long, env = "BROKER_NODE_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// This broker's node secret (prefer the environment variable: flags show in `ps`).
    #[arg(long, env = "BROKER_NODE_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_secret: Option<String>,
    /// Join a cluster: NATS server URLs (comma-separated seeds, `nats://` or `tls://`). Brokers
    /// with the same NATS and prefix act as one MQTT service (docs/cluster.md). Off unless set.
    #[arg(long, env = "BROKER_CLUSTER_NATS_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_nats_url: Option<String>,
    /// NATS user and password (prefer the environment variables: flags show in `ps`).
    #[arg(long, env = "BROKER_CLUSTER_NATS_USER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_nats_user: Option<String>,
    #[arg(long, env = "BROKER_CLUSTER_NATS_PASSWORD", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_nats_password: Option<String>,
    /// NATS credentials file (JWT and NKey seed).
    #[arg(long, env = "BROKER_CLUSTER_NATS_CREDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_nats_creds: Option<PathBuf>,
    /// PEM file of certificate authorities for `tls://` NATS URLs, besides the system's.
    #[arg(long, env = "BROKER_CLUSTER_NATS_CA")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_nats_ca: Option<PathBuf>,
    /// Prefix of every subject, stream and bucket of this cluster (default `mq`).
    #[arg(long, env = "BROKER_CLUSTER_PREFIX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_prefix: Option<String>,
    /// Replicas of the cluster's streams and buckets (default 3: a 3-node NATS cluster keeps
    /// working with one node down; 1 for a single NATS server).
    #[arg(long, env = "BROKER_CLUSTER_REPLICAS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_replicas: Option<usize>,
    /// First wait before a rule's failed delivery is retried, in ms (doubles up to the maximum).
    #[arg(long, env = "BROKER_RULES_RETRY_MIN_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_retry_min_ms: Option<u64>,
    /// Longest wait between retries of a rule's delivery, in ms.
    #[arg(long, env = "BROKER_RULES_RETRY_MAX_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_retry_max_ms: Option<u64>,
    /// Clients whose deliveries one rule sends at once (each client's in order).
    #[arg(long, env = "BROKER_RULES_CONCURRENCY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_concurrency: Option<usize>,
    /// Bytes of disk the message trace may take (under <data_dir>/trace; records are kept 3 days
    /// at most, the oldest hours go first beyond this). 0 turns message trace off.
    #[arg(long, env = "BROKER_TRACE_MAX_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_max_bytes: Option<u64>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "BROKER_LOG_JSON")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub log_json: bool,
}

/// The effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub ws_listen: Option<SocketAddr>,
    pub tls_listen: Option<SocketAddr>,
    pub wss_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub snapshot: PathBuf,
    pub data_dir: PathBuf,
    pub workers: usize,
    pub max_frame_size: u32,
    pub max_inflight: u16,
    pub max_queued_messages: usize,
    pub max_queued_bytes: usize,
    pub housekeeping_secs: u64,
    pub dev_listen: Option<SocketAddr>,
    pub dev_instance: String,
    pub log_json: bool,
    pub control_plane_url: Option<String>,
    pub control_plane_ca: Option<PathBuf>,
    pub node_id: Option<String>,
    pub node_secret: Option<String>,
    pub cluster_nats_url: Option<String>,
    pub cluster_nats_user: Option<String>,
    pub cluster_nats_password: Option<String>,
    pub cluster_nats_creds: Option<PathBuf>,
    pub cluster_nats_ca: Option<PathBuf>,
    pub cluster_prefix: String,
    pub cluster_replicas: usize,
    pub rules_retry_min_ms: u64,
    pub rules_retry_max_ms: u64,
    pub rules_concurrency: usize,
    pub trace_max_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 1883).into(),
            http_listen: ([127, 0, 0, 1], 8081).into(),
            ws_listen: None,
            tls_listen: None,
            wss_listen: None,
            tls_cert: None,
            tls_key: None,
            snapshot: "snapshot.json".into(),
            data_dir: "data".into(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            // Above the 64 KiB default message size, far below what could exhaust memory.
            max_frame_size: 1024 * 1024,
            max_inflight: 32,
            max_queued_messages: 10_000,
            max_queued_bytes: 16 << 20,
            housekeeping_secs: 60,
            dev_listen: None,
            dev_instance: "mqtt-dev000000000".into(),
            log_json: false,
            control_plane_url: None,
            control_plane_ca: None,
            node_id: None,
            node_secret: None,
            cluster_nats_url: None,
            cluster_nats_user: None,
            cluster_nats_password: None,
            cluster_nats_creds: None,
            cluster_nats_ca: None,
            cluster_prefix: "mq".into(),
            cluster_replicas: 3,
            rules_retry_min_ms: 200,
            rules_retry_max_ms: 30_000,
            rules_concurrency: 64,
            trace_max_bytes: 1 << 30,
        }
    }
}

impl Config {
    /// How rule senders pace themselves.
    pub(crate) fn rule_settings(&self) -> crate::rules::sender::Settings {
        let retry_min = std::time::Duration::from_millis(self.rules_retry_min_ms.max(1));
        crate::rules::sender::Settings {
            retry_min,
            retry_max: std::time::Duration::from_millis(self.rules_retry_max_ms).max(retry_min),
            concurrency: self.rules_concurrency.max(1),
            ..Default::default()
        }
    }

    /// The cluster membership, when `cluster_nats_url` is set (it needs a node ID).
    pub fn cluster(&self) -> anyhow::Result<Option<crate::cluster::ClusterConfig>> {
        let Some(urls) = self.cluster_nats_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let node = self.node_id.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
            anyhow::anyhow!("cluster_nats_url is set but node_id is missing (every broker of a cluster needs its own)")
        })?;
        let prefix = self.cluster_prefix.trim();
        anyhow::ensure!(
            !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "cluster_prefix must be letters, digits and _"
        );
        Ok(Some(crate::cluster::ClusterConfig {
            urls: urls
                .split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect(),
            user: self.cluster_nats_user.clone(),
            password: self.cluster_nats_password.clone(),
            creds: self.cluster_nats_creds.clone(),
            tls_ca: self.cluster_nats_ca.clone(),
            prefix: prefix.to_string(),
            node,
            replicas: self.cluster_replicas.max(1),
        }))
    }
}

impl Config {
    /// Layers defaults < TOML file < env/flags (clap already merged env into `args`).
    pub fn load(args: &Args) -> Result<Self, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &args.config {
            fig = fig.merge(Toml::file_exact(path));
        }
        fig.merge(Env::prefixed("BROKER_").ignore(&["CONFIG"]))
            .merge(Serialized::defaults(args))
            .extract()
            .map_err(Box::new)
    }
}
