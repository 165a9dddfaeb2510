//! Test harness: starts the real `broker` binary on free ports with a snapshot in a temp dir, and
//! builds the Alibaba-style fixture (instances, keys, device credentials, token signer).
#![allow(dead_code)]

pub mod raw;
pub mod v3;
pub mod v5;
pub mod wire;

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::quotas::Quotas;
use common::signing::mqtt_password;
pub use common::snapshot::Snapshot;
use common::snapshot::{AccessKeyGrant, DeviceCredentialEntry, InstanceConfig, RevokedToken, SnapshotContent};
use common::token::{TokenAction, TokenClaims, TokenSigner};

pub const INST: &str = "mqtt-abcdefabcdef";
pub const OTHER: &str = "mqtt-otherinstanc";
pub const SMALL: &str = "mqtt-smallquota12";
pub const AK: &str = "AKtest";
pub const SK: &str = "secretTEST";
pub const DC_ID: &str = "DC.dev1";
pub const DC_SECRET: &str = "dcsecret";
pub const GROUP: &str = "GID_test";
pub const REVOKED_JTI: &str = "revoked-1";

pub fn signer() -> TokenSigner {
    TokenSigner::from_seed("k1", &[7u8; 32])
}

pub use common::time::now_ms;

pub fn token(inst: &str, act: TokenAction, res: &[&str], exp_ms: i64, jti: &str) -> String {
    signer().sign(&TokenClaims {
        jti: jti.into(),
        iid: inst.into(),
        ak: AK.into(),
        res: res.iter().map(|s| s.to_string()).collect(),
        act,
        iat_ms: now_ms(),
        exp_ms,
    })
}

fn instance(id: &str, quotas: Quotas) -> InstanceConfig {
    InstanceConfig {
        rules: Vec::new(),
        custom_auth: Default::default(),
        id: id.into(),
        name: id.into(),
        quotas,
        reject_duplicate_client_id: false,
        parent_topics: vec!["T".into(), "U".into()],
        group_ids: vec![GROUP.into(), "GID_other".into()],
        access_keys: vec![AccessKeyGrant {
            access_key_id: AK.into(),
            access_key_secret: SK.into(),
            enabled: true,
        }],
        device_credentials: vec![DeviceCredentialEntry {
            client_id: format!("{GROUP}@@@dev1"),
            device_access_key_id: DC_ID.into(),
            device_access_key_secret: DC_SECRET.into(),
        }],
        revoked_tokens: vec![RevokedToken {
            jti: REVOKED_JTI.into(),
            exp_ms: now_ms() + 3_600_000,
        }],
    }
}

/// The standard fixture: a default instance, a second one (isolation), and one with small quotas.
pub fn snapshot() -> Snapshot {
    let small = Quotas {
        max_connections: 2,
        ..Quotas::default()
    };
    Snapshot::new(
        1,
        SnapshotContent {
            rule_policy: Default::default(),
            token_keys: vec![signer().public_key().clone()],
            instances: vec![
                instance(INST, Quotas::default()),
                instance(OTHER, Quotas::default()),
                instance(SMALL, small),
            ],
        },
    )
}

pub fn sig_user(inst: &str) -> String {
    format!("Signature|{AK}|{inst}")
}

pub fn sig_pass(client_id: &str) -> String {
    mqtt_password(SK, client_id)
}

/// A file of `tests/fixtures` (test-only TLS certificate authority, server certificate and key).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

use test_support::net::free_port;

/// A running broker process; killed on drop.
pub struct BrokerProc {
    pub child: Option<Child>,
    pub port: u16,
    pub http_port: u16,
    pub dev_port: Option<u16>,
    pub ws_port: u16,
    pub tls_port: u16,
    pub wss_port: u16,
    pub dir: PathBuf,
    /// More environment for the broker process (its flags as `BROKER_*` variables).
    pub env: Vec<(String, String)>,
    /// RLIMIT_FSIZE of the broker process in bytes (SIGXFSZ ignored): its writes past it fail.
    pub file_size_limit: Option<u64>,
    _tmp: Option<tempfile::TempDir>,
}

impl BrokerProc {
    /// A broker in a fresh temporary directory serving `snap`, not started yet.
    fn prepare(snap: &Snapshot, dev: bool, env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("snapshot.json"), serde_json::to_vec(snap).unwrap()).unwrap();
        Self {
            child: None,
            port: free_port(),
            http_port: free_port(),
            dev_port: dev.then(free_port),
            ws_port: free_port(),
            tls_port: free_port(),
            wss_port: free_port(),
            dir,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            file_size_limit: None,
            _tmp: Some(tmp),
        }
    }

    fn started(mut self) -> Self {
        self.spawn();
        self
    }

    pub fn start(snap: &Snapshot) -> Self {
        Self::prepare(snap, false, &[]).started()
    }

    /// Starts with more environment, e.g. `[("BROKER_HOUSEKEEPING_SECS", "1")]`.
    pub fn start_with_env(snap: &Snapshot, env: &[(&str, &str)]) -> Self {
        Self::prepare(snap, false, env).started()
    }

    pub fn start_with_dev(snap: &Snapshot) -> Self {
        Self::prepare(snap, true, &[]).started()
    }

    /// Starts the broker process and waits until its listeners answer.
    pub fn spawn(&mut self) {
        self.launch();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // The development listener is bound last, after the TLS configuration is read: a test
            // that uses it at once must not find it closed.
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.http_port)).is_ok()
                && self
                    .dev_port
                    .is_none_or(|p| TcpStream::connect(("127.0.0.1", p)).is_ok())
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("broker exited early ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "broker did not start:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A broker that is expected to refuse its configuration: starts it and waits (at most
    /// `secs`) for it to exit by itself.
    pub fn start_to_exit(snap: &Snapshot, env: &[(&str, &str)], secs: u64) -> (Self, std::process::ExitStatus) {
        let mut b = Self::prepare(snap, false, env);
        b.launch();
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = b.child.as_mut().unwrap().try_wait().unwrap() {
                b.child = None;
                return (b, status);
            }
            assert!(Instant::now() < deadline, "broker did not exit:\n{}", b.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_broker"));
        cmd.env("BROKER_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("BROKER_HTTP_LISTEN", format!("127.0.0.1:{}", self.http_port))
            .env("BROKER_WS_LISTEN", format!("127.0.0.1:{}", self.ws_port))
            .env("BROKER_TLS_LISTEN", format!("127.0.0.1:{}", self.tls_port))
            .env("BROKER_WSS_LISTEN", format!("127.0.0.1:{}", self.wss_port))
            .env("BROKER_TLS_CERT", fixture("server.pem"))
            .env("BROKER_TLS_KEY", fixture("server.key"))
            .env("BROKER_SNAPSHOT", self.dir.join("snapshot.json"))
            .env("BROKER_DATA_DIR", self.dir.join("data"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log.try_clone().unwrap()));
        if let Some(p) = self.dev_port {
            cmd.env("BROKER_DEV_LISTEN", format!("127.0.0.1:{p}"));
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(limit) = self.file_size_limit {
            limit_file_size(&mut cmd, limit);
            // The limit would stop the log file too: this process writes it.
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("broker binary starts");
        for out in [
            child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
            child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let mut log = log.try_clone().unwrap();
            std::thread::spawn(move || std::io::copy(&mut { out }, &mut log));
        }
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`) through the shell's `kill` builtin.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("broker running").id();
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -{sig} {pid}")])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {pid} failed");
    }

    /// Serves `snap` from now on: writes the snapshot file, makes the broker re-read it (SIGHUP)
    /// and waits until it applied it (its `broker_snapshot_version`). `snap.version` must be new.
    pub async fn reload(&self, snap: &Snapshot) {
        std::fs::write(self.dir.join("snapshot.json"), serde_json::to_vec(snap).unwrap()).unwrap();
        self.signal("HUP");
        let version = snap.version as f64;
        wait_until(10, "the reloaded snapshot", || {
            self.metric("broker_snapshot_version") == Some(version)
        })
        .await;
    }

    /// A field of the broker process's `/proc/<pid>/status`, trimmed.
    pub fn proc_status(&self, field: &str) -> String {
        let pid = self.child.as_ref().expect("broker running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let prefix = format!("{field}:");
        status
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
            .trim()
            .to_string()
    }

    /// The broker's threads: name and nice value (from `/proc/<pid>/task/<tid>/stat`).
    pub fn threads(&self) -> Vec<(String, i64)> {
        let pid = self.child.as_ref().expect("broker running").id();
        let mut out = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // Fields after the parenthesised name: state is field 3, nice field 19.
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let nice = rest.split(' ').nth(16).and_then(|n| n.parse().ok()).unwrap_or(0);
            out.push((comm.trim_end().to_string(), nice));
        }
        out
    }

    /// The broker's resident memory (VmRSS) in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let kb: u64 = self
            .proc_status("VmRSS")
            .trim_end_matches("kB")
            .trim()
            .parse()
            .expect("VmRSS in kB");
        kb * 1024
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// GET /metrics as text.
    pub fn metrics(&self) -> String {
        use std::io::Write;
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port)).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// The value of an unlabelled metric, if exported.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// The sum of the series of `name` whose labels include every `labels` pair (0 when none is
    /// exported yet).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter(|(series, _)| {
                let rest = series.strip_prefix(name).unwrap_or("-");
                (rest.is_empty() || rest.starts_with('{'))
                    && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
            .filter_map(|(_, value)| value.parse::<f64>().ok())
            .sum()
    }

    /// Waits until the store holds no queued message (every delivery acknowledged and deleted).
    pub fn wait_store_empty(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.metric("broker_offline_messages") != Some(0.0) {
            assert!(
                Instant::now() < deadline,
                "offline messages left: {:?}",
                self.metric("broker_offline_messages")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The delete and its flush run back to back on the worker; give the flush a moment.
        std::thread::sleep(Duration::from_millis(200));
    }

    pub fn v3_opts(&self, client_id: &str, user: &str, pass: &str) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(client_id, "127.0.0.1", self.port);
        o.set_credentials(user, pass);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1 << 20, 1 << 20);
        o
    }

    pub fn v5_opts(&self, client_id: &str, user: &str, pass: &str) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(client_id, "127.0.0.1", self.port);
        o.set_credentials(user, pass);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(Some(1 << 20));
        o
    }

    /// Signature-mode v3 options for the default instance.
    pub fn sig_opts(&self, client_id: &str) -> rumqttc::MqttOptions {
        self.v3_opts(client_id, &sig_user(INST), &sig_pass(client_id))
    }
}

/// The payloads of received messages, as text.
pub fn payloads(got: &[rumqttc::Publish]) -> Vec<String> {
    got.iter()
        .map(|p| String::from_utf8_lossy(&p.payload).to_string())
        .collect()
}

/// MQTT 3.1.1 options with a persistent session (`cleanSession=false`).
pub fn persistent(mut o: rumqttc::MqttOptions) -> rumqttc::MqttOptions {
    o.set_clean_session(false);
    o
}

/// Connects with a persistent session, subscribes to `filter` at QoS 1 and leaves.
pub async fn away_subscribed(o: rumqttc::MqttOptions, filter: &str) {
    let (c, mut ev) = v3::subscribed(persistent(o), filter, rumqttc::QoS::AtLeastOnce).await;
    c.disconnect().await.unwrap();
    let _ = v3::drain(&mut ev, 0.2).await;
}

/// Limits the size of every file the process writes (RLIMIT_FSIZE) and ignores SIGXFSZ, so that a
/// write past the limit fails with EFBIG instead of killing the process.
fn limit_file_size(cmd: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls: setrlimit and signal.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// Polls `cond` every 20 ms (other tasks run meanwhile) until it holds; panics naming `what`
/// after `secs`.
pub async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "no {what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- broker log ----\n{}", self.log());
        }
        self.kill9();
    }
}

/// Runs one pytest file of `tests/python/` with `env` and returns its output; panics unless it
/// passed with exactly `passes` tests (pytest passes with zero tests collected only if something
/// is badly wrong). Python and its packages come from tests/requirements.txt (`PYTHON` selects the
/// interpreter); a missing interpreter or package fails.
pub fn pytest(file: &str, env: &[(&str, String)], passes: usize) -> String {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(file);
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pytest {file} failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{passes} passed")),
        "unexpected pytest result:\n{stdout}\n{stderr}"
    );
    stdout
}
