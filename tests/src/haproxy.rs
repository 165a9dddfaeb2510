//! HAProxy (Debian's `haproxy`) run with the repository's `docker/haproxy.cfg`, the file compose and
//! `DEV_CLUSTER=1 scripts/dev` use, in front of test brokers on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use test_support::net::{free_port, wait_for_port};

/// The `haproxy` binary: on PATH, or where Debian's package puts it.
fn binary() -> PathBuf {
    let on_path = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| PathBuf::from(dir).join("haproxy"))
        .find(|p| p.exists());
    let bin = on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/haproxy"));
    assert!(
        bin.exists(),
        "haproxy not found: install Debian's haproxy (scripts/test does)"
    );
    bin
}

/// The configuration shared with docker-compose.yml and scripts/dev.
pub fn config_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/haproxy.cfg")
}

pub struct HaProxy {
    child: Option<Child>,
    /// Where MQTT clients connect.
    pub port: u16,
}

impl HaProxy {
    /// Starts HAProxy in front of the MQTT listeners on `brokers` (2 or 3 loopback ports), logging to
    /// `dir/haproxy.log`; returns once it listens.
    pub fn start(dir: &Path, brokers: &[u16]) -> Self {
        assert!(
            (2..=3).contains(&brokers.len()),
            "docker/haproxy.cfg has 2 or 3 brokers"
        );
        let port = free_port();
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("haproxy log");
        let mut cmd = Command::new(binary());
        cmd.arg("-db")
            .arg("-f")
            .arg(config_file())
            .env("MQTT_BIND", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        for (i, p) in brokers.iter().enumerate() {
            cmd.env(format!("BROKER_{}", i + 1), format!("127.0.0.1:{p}"));
        }
        let child = cmd.spawn().expect("start haproxy");
        wait_for_port(port, 10, "haproxy");
        Self {
            child: Some(child),
            port,
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
