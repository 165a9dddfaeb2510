//! Layered configuration: built-in defaults, then an optional TOML file, then environment variables
//! and command-line flags (clap reads both), so `--help` lists every option.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Effective settings of one control-plane process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    /// Longest wait for a pooled PostgreSQL connection (also bounds connecting to a stopped server):
    /// after it the request answers 503 `ServiceUnavailable`.
    pub database_acquire_timeout_ms: u64,
    /// Base64 of 32 bytes; encrypts AccessKey/device secrets and the token signing seed at rest.
    pub master_key: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub admin_username: String,
    /// First operator's password; when absent a random one is generated and printed once.
    pub admin_password: Option<String>,
    pub operator_token_ttl_secs: u64,
    /// Public MQTT endpoints shown to users on every instance (e.g. `tcp://mqtt.example.com:1883`).
    pub mqtt_endpoints: Vec<String>,
    /// ACS3 request signatures older or newer than this are refused.
    pub signature_window_secs: i64,
    pub log_json: bool,
    /// Broker node credentials `id:secret` created or updated at start-up (docker-compose, scripts/dev).
    pub broker_nodes: Vec<String>,
    /// A node without a heartbeat for this long is shown as `silent`.
    pub broker_silent_secs: u64,
    /// Web console build served at `/` when the directory exists (relative to the working directory).
    pub console_dir: PathBuf,
    /// A request's head must arrive within this many seconds of the connection opening (or of its
    /// first byte, on a kept-alive connection).
    pub http_header_timeout_secs: u64,
    /// A kept-alive connection with no request for this long is closed.
    pub http_idle_timeout_secs: u64,
    /// A request (body included) must be answered within this; broker long-polls get their wait on top.
    pub http_request_timeout_secs: u64,
    /// Open HTTP connections at most; further ones get 503 `TooManyConnections` and are closed.
    pub http_max_connections: usize,
    /// Login attempts per minute from one client address (IPv6: one /64).
    pub login_attempts_per_minute: u32,
    /// Failed login attempts per minute for one username.
    pub login_failures_per_minute: u32,
    /// Password hashes computed at once; further logins answer 503 `ServerBusy` at once.
    pub login_max_concurrent_hashes: usize,
    /// The console session cookie's `Secure` flag: unset = when the request came over HTTPS (as
    /// `X-Forwarded-Proto` says), `true` = always, `false` = never.
    pub session_cookie_secure: Option<bool>,
    /// Whether rule webhook targets may be loopback addresses (tests, a local set-up).
    pub rule_targets_allow_loopback: bool,
    /// Whether rule webhook targets may be private addresses (10/8, 172.16/12, 192.168/16, fc00::/7,
    /// 100.64/10).
    pub rule_targets_allow_private: bool,
    /// How long TestRule waits for the broker's answer before 504 `RuleTestTimeout`.
    pub rule_test_timeout_secs: u64,
    /// How often the full configuration is built to check brokers' digests against (when it changed
    /// since the last build); 0 = never.
    pub config_check_secs: u64,
}

impl Config {
    /// The rule target policy brokers get in the snapshot (and API checks apply to IP literals).
    pub fn rule_policy(&self) -> common::rules::TargetPolicy {
        common::rules::TargetPolicy {
            allow_loopback: self.rule_targets_allow_loopback,
            allow_private: self.rule_targets_allow_private,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid literal"),
            database_url: "postgres://postgres@127.0.0.1:5432/mqtt".into(),
            database_max_connections: 16,
            database_acquire_timeout_ms: 1000,
            master_key: None,
            master_key_file: None,
            admin_username: "admin".into(),
            admin_password: None,
            operator_token_ttl_secs: 12 * 3600,
            mqtt_endpoints: vec!["tcp://127.0.0.1:1883".into()],
            signature_window_secs: 300,
            log_json: false,
            broker_nodes: vec![],
            broker_silent_secs: 10,
            console_dir: PathBuf::from("web-console/dist"),
            http_header_timeout_secs: 10,
            http_idle_timeout_secs: 60,
            http_request_timeout_secs: 30,
            http_max_connections: 1000,
            login_attempts_per_minute: 20,
            login_failures_per_minute: 10,
            login_max_concurrent_hashes: std::thread::available_parallelism().map_or(2, usize::from),
            session_cookie_secure: None,
            rule_targets_allow_loopback: false,
            rule_targets_allow_private: false,
            rule_test_timeout_secs: 10,
            config_check_secs: 300,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "control-plane",
    version,
    about = "MQTT service control plane (REST API on PostgreSQL)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: CliOptions,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Print the OpenAPI document (regenerates openapi/openapi.json).
    Openapi,
}

/// Every option; each can also come from the config file (same name) or the environment.
#[derive(Debug, Default, Args, Serialize)]
pub struct CliOptions {
    /// TOML config file (keys as in the long option names, with '_' instead of '-').
    #[arg(long, env = "CP_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CP_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// PostgreSQL URL [default: postgres://postgres@127.0.0.1:5432/mqtt].
    #[arg(long, env = "DATABASE_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Maximum PostgreSQL connections in the pool [default: 16].
    #[arg(long, env = "CP_DATABASE_MAX_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_max_connections: Option<u32>,
    /// Longest wait in milliseconds for a PostgreSQL connection before answering 503 [default: 1000].
    #[arg(long, env = "CP_DATABASE_ACQUIRE_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_acquire_timeout_ms: Option<u64>,
    /// Master key, Base64 of 32 bytes (or use --master-key-file).
    #[arg(long, env = "MASTER_KEY", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key: Option<String>,
    /// File holding the Base64 master key.
    #[arg(long, env = "MASTER_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_file: Option<PathBuf>,
    /// Username of the first operator [default: admin].
    #[arg(long, env = "ADMIN_USERNAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_username: Option<String>,
    /// Password of the first operator (only used when no operator exists yet).
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    /// Lifetime of operator bearer tokens in seconds [default: 43200].
    #[arg(long, env = "CP_OPERATOR_TOKEN_TTL_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_token_ttl_secs: Option<u64>,
    /// Public MQTT endpoints, comma separated [default: tcp://127.0.0.1:1883].
    #[arg(long, env = "CP_MQTT_ENDPOINTS", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_endpoints: Option<Vec<String>>,
    /// Accepted clock skew of signed requests in seconds [default: 300].
    #[arg(long, env = "CP_SIGNATURE_WINDOW_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_window_secs: Option<i64>,
    /// Log as JSON lines.
    #[arg(long, env = "CP_LOG_JSON")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_json: Option<bool>,
    /// Broker node credentials created or updated at start-up, comma separated `id:secret` pairs.
    #[arg(long, env = "CP_BROKER_NODES", value_delimiter = ',', hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_nodes: Option<Vec<String>>,
    /// Seconds without a heartbeat after which a broker node is shown as silent [default: 10].
    #[arg(long, env = "CP_BROKER_SILENT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_silent_secs: Option<u64>,
    /// Web console directory served at / when it exists [default: web-console/dist].
    #[arg(long, env = "CP_CONSOLE_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_dir: Option<PathBuf>,
    /// Seconds a client has to send a request head [default: 10].
    #[arg(long, env = "CP_HTTP_HEADER_TIMEOUT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_header_timeout_secs: Option<u64>,
    /// Seconds a kept-alive connection may stay without a request [default: 60].
    #[arg(long, env = "CP_HTTP_IDLE_TIMEOUT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_idle_timeout_secs: Option<u64>,
    /// Seconds a request may take, body included (long-polls get their wait on top) [default: 30].
    #[arg(long, env = "CP_HTTP_REQUEST_TIMEOUT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_request_timeout_secs: Option<u64>,
    /// Open HTTP connections at most [default: 1000].
    #[arg(long, env = "CP_HTTP_MAX_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_max_connections: Option<usize>,
    /// Login attempts per minute from one client address [default: 20].
    #[arg(long, env = "CP_LOGIN_ATTEMPTS_PER_MINUTE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_attempts_per_minute: Option<u32>,
    /// Failed login attempts per minute for one username [default: 10].
    #[arg(long, env = "CP_LOGIN_FAILURES_PER_MINUTE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_failures_per_minute: Option<u32>,
    /// Password hashes computed at once [default: number of CPU cores].
    #[arg(long, env = "CP_LOGIN_MAX_CONCURRENT_HASHES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_max_concurrent_hashes: Option<usize>,
    /// Secure flag of the console session cookie [default: when the request came over HTTPS].
    #[arg(long, env = "CP_SESSION_COOKIE_SECURE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_cookie_secure: Option<bool>,
    /// Allow rule webhook targets on loopback addresses [default: false].
    #[arg(long, env = "CP_RULE_TARGETS_ALLOW_LOOPBACK")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_targets_allow_loopback: Option<bool>,
    /// Allow rule webhook targets on private addresses [default: false].
    #[arg(long, env = "CP_RULE_TARGETS_ALLOW_PRIVATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_targets_allow_private: Option<bool>,
    /// Seconds TestRule waits for the broker's answer [default: 10].
    #[arg(long, env = "CP_RULE_TEST_TIMEOUT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_test_timeout_secs: Option<u64>,
    /// Seconds between builds of the full configuration that brokers' digests are checked against;
    /// 0 = never [default: 300].
    #[arg(long, env = "CP_CONFIG_CHECK_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_check_secs: Option<u64>,
}

impl CliOptions {
    /// Merges defaults, the config file and these options (flags and env) in that order.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = &self.config {
            anyhow::ensure!(file.exists(), "config file {} does not exist", file.display());
            figment = figment.merge(Toml::file(file));
        }
        Ok(figment.merge(Serialized::defaults(self)).extract()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_file_then_flags_and_env() {
        let defaults = CliOptions::default().resolve().unwrap();
        assert_eq!(defaults.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(defaults.signature_window_secs, 300);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cp.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\nmqtt_endpoints = [\"tcp://a:1883\"]\nlog_json = true\n",
        )
        .unwrap();
        let options = CliOptions {
            config: Some(file.clone()),
            ..Default::default()
        };
        let from_file = options.resolve().unwrap();
        assert_eq!(from_file.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(from_file.mqtt_endpoints, vec!["tcp://a:1883"]);
        assert!(from_file.log_json);

        // Flags (and the env vars clap maps onto them) win over the file.
        let cli = Cli::try_parse_from([
            "control-plane",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:1",
        ])
        .unwrap();
        let merged = cli.options.resolve().unwrap();
        assert_eq!(merged.listen.to_string(), "127.0.0.1:1");
        assert_eq!(merged.mqtt_endpoints, vec!["tcp://a:1883"]);

        let missing = CliOptions {
            config: Some(dir.path().join("nope.toml")),
            ..Default::default()
        };
        assert!(missing.resolve().is_err());
    }
}
