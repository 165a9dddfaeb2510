//! The control plane and broker processes: start on free loopback ports, stop gracefully, or kill -9.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use test_support::net::{free_port, wait_for_port};

use crate::bins;

/// Sends SIGKILL (or SIGTERM) through the shell's `kill` builtin (no extra crate or package needed).
fn signal(child: &Child, sig: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{sig} {}", child.id()))
        .status();
}

fn stop(child: &mut Child, sig: &str) {
    signal(child, sig);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .expect("open log file")
}

/// A control-plane process on a fresh database of the shared test PostgreSQL.
pub struct ControlPlane {
    child: Option<Child>,
    pub port: u16,
    pub url: String,
    pub admin_password: String,
    db_url: String,
    master_key: String,
    nodes: String,
    pub dir: PathBuf,
}

impl ControlPlane {
    /// Starts with the given broker node credentials (`id:secret`) and waits until it is ready.
    pub async fn start(dir: &Path, nodes: &[(&str, &str)]) -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let port = free_port();
        let mut cp = Self {
            child: None,
            port,
            url: format!("http://127.0.0.1:{port}"),
            admin_password: "e2e-admin-password".into(),
            db_url: test_support::pg::fresh_database().await,
            master_key: base64::engine::general_purpose::STANDARD.encode(key),
            nodes: nodes
                .iter()
                .map(|(id, s)| format!("{id}:{s}"))
                .collect::<Vec<_>>()
                .join(","),
            dir: dir.to_path_buf(),
        };
        cp.spawn().await;
        cp
    }

    async fn spawn(&mut self) {
        let child = Command::new(bins::path("control-plane"))
            .env("CP_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("DATABASE_URL", &self.db_url)
            .env("MASTER_KEY", &self.master_key)
            .env("ADMIN_PASSWORD", &self.admin_password)
            .env("CP_BROKER_NODES", &self.nodes)
            // Rule tests point webhooks at receivers on this machine.
            .env("CP_RULE_TARGETS_ALLOW_LOOPBACK", "true")
            // Brokers' configuration digests checked every second, not every five minutes.
            .env("CP_CONFIG_CHECK_SECS", "1")
            .env("RUST_LOG", "info")
            .stdout(log_file(&self.dir, "control-plane.log"))
            .stderr(log_file(&self.dir, "control-plane.log"))
            .spawn()
            .expect("start the control plane");
        self.child = Some(child);
        let ready = format!("{}/readyz", self.url);
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the control plane was not ready within 30 s (see {}/control-plane.log)",
            self.dir.display()
        );
    }

    /// The value of a counter on the control plane's /metrics (as `Broker::counter`).
    pub async fn counter(&self, name: &str) -> f64 {
        counter_at(&format!("{}/metrics", self.url), name).await
    }

    /// SIGKILL: the process vanishes without any goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, "KILL");
        }
    }

    /// The control plane's database, for tests that must write what its API refuses to write.
    pub fn db_url(&self) -> &str {
        &self.db_url
    }

    /// Starts again on the same port and database.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, "TERM");
        }
    }
}

/// A broker process linked to a control plane as one node.
pub struct Broker {
    child: Option<Child>,
    pub node_id: String,
    node_secret: String,
    cp_url: String,
    /// More command-line arguments.
    extra_args: Vec<String>,
    pub mqtt_port: u16,
    pub http_port: u16,
    pub dir: PathBuf,
}

impl Broker {
    /// Starts node `node_id` with its own data folder under `dir`; waits until MQTT and HTTP listen.
    pub fn start(dir: &Path, cp_url: &str, node_id: &str, node_secret: &str) -> Self {
        Self::start_with(dir, cp_url, node_id, node_secret, &[])
    }

    /// As `start`, with more command-line arguments.
    pub fn start_with(dir: &Path, cp_url: &str, node_id: &str, node_secret: &str, extra_args: &[&str]) -> Self {
        let dir = dir.join(node_id);
        std::fs::create_dir_all(&dir).expect("broker dir");
        let mut b = Self {
            child: None,
            node_id: node_id.into(),
            node_secret: node_secret.into(),
            cp_url: cp_url.into(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            mqtt_port: free_port(),
            http_port: free_port(),
            dir,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let child = Command::new(bins::path("broker"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.mqtt_port))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--snapshot")
            .arg(self.dir.join("last-known-good.json"))
            .arg("--control-plane-url")
            .arg(&self.cp_url)
            .arg("--node-id")
            .arg(&self.node_id)
            .args(&self.extra_args)
            .env("BROKER_NODE_SECRET", &self.node_secret)
            .env("RUST_LOG", std::env::var("E2E_RUST_LOG").unwrap_or("info".into()))
            .stdin(Stdio::null())
            .stdout(log_file(&self.dir, "broker.log"))
            .stderr(log_file(&self.dir, "broker.log"))
            .spawn()
            .expect("start the broker");
        self.child = Some(child);
        wait_for_port(self.mqtt_port, 30, "the broker");
        wait_for_port(self.http_port, 30, "the broker's HTTP listener");
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, "KILL");
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn last_known_good(&self) -> PathBuf {
        self.dir.join("last-known-good.json")
    }

    /// The value of a counter on the broker's /metrics, labels included in `name` (e.g.
    /// `broker_config_received_total{kind="delta"}`); 0 when not exported yet.
    pub async fn counter(&self, name: &str) -> f64 {
        counter_at(&format!("http://127.0.0.1:{}/metrics", self.http_port), name).await
    }

    pub fn mqtt_addr(&self) -> (String, u16) {
        ("127.0.0.1".into(), self.mqtt_port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, "TERM");
        }
    }
}

/// The value of counter `name` (labels included) in the Prometheus text at `url`; 0 when absent.
async fn counter_at(url: &str, name: &str) -> f64 {
    let text = reqwest::get(url)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        .sum()
}
