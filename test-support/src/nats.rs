//! A throwaway NATS cluster with JetStream: several `nats-server` processes on loopback with routes
//! between them, ready once JetStream has elected its meta leader. Killed (and its directory
//! removed) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::{free_port, wait_for_port};

/// The `nats-server` binary: on PATH, or where Debian's package puts it.
fn binary() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join("nats-server");
        if p.exists() {
            return p;
        }
    }
    let debian = PathBuf::from("/usr/sbin/nats-server");
    assert!(
        debian.exists(),
        "nats-server not found: install Debian's nats-server (scripts/test does)"
    );
    debian
}

pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub monitor_port: u16,
    pub route_port: u16,
    child: Option<Child>,
    args: Vec<String>,
}

impl Node {
    fn spawn(&mut self) {
        let child = Command::new(binary())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }
}

pub struct NatsCluster {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// `n` servers (3 for JetStream replication), started and with a JetStream meta leader.
    pub fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16, u16)> = (0..n).map(|_| (free_port(), free_port(), free_port())).collect();
        let routes: Vec<String> = ports.iter().map(|(_, _, r)| format!("nats://127.0.0.1:{r}")).collect();
        let mut nodes = Vec::new();
        for (i, (client, monitor, route)) in ports.into_iter().enumerate() {
            let name = format!("n{i}");
            let store = dir.path().join(&name);
            let mut args: Vec<String> = [
                "-a",
                "127.0.0.1",
                "-p",
                &client.to_string(),
                "-m",
                &monitor.to_string(),
                "-js",
                "-sd",
                store.to_str().unwrap(),
                "--server_name",
                &name,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if n > 1 {
                args.extend([
                    "--cluster_name".to_string(),
                    "mqtest".to_string(),
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{route}"),
                    "--routes".to_string(),
                    routes.join(","),
                ]);
            }
            let mut node = Node {
                name,
                client_port: client,
                monitor_port: monitor,
                route_port: route,
                child: None,
                args,
            };
            node.spawn();
            nodes.push(node);
        }
        let cluster = Self { nodes, _dir: dir };
        for node in &cluster.nodes {
            wait_for_port(node.client_port, 20, "nats-server");
        }
        cluster.wait_for_leader(Duration::from_secs(30));
        cluster
    }

    /// Seed URLs of every server, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(Node::url).collect::<Vec<_>>().join(",")
    }

    /// Waits until a JetStream meta leader is elected (panics after `within`).
    pub fn wait_for_leader(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                if let Ok(body) = http_get(node.monitor_port, "/jsz") {
                    let single = self.nodes.len() == 1 && body.contains("\"config\"");
                    if single || body.contains("\"leader\"") {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("no JetStream meta leader within {within:?}");
    }

    /// kill -9 of one server.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops one server the way an operator does (SIGTERM: it flushes its store and leaves). Killing
    /// every server with -9 at once may lose what JetStream had not written to disk yet.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    /// Freezes one server (SIGSTOP): its sockets stay open but nothing answers, as when a host
    /// stalls; clients notice only through their pings.
    pub fn pause(&self, i: usize) {
        self.signal(i, "-STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self, i: usize) {
        self.signal(i, "-CONT");
    }

    fn signal(&self, i: usize, sig: &str) {
        if let Some(c) = &self.nodes[i].child {
            let status = Command::new("kill").args([sig, &c.id().to_string()]).status();
            assert!(status.is_ok_and(|s| s.success()), "kill {sig} of nats-server {i}");
        }
    }

    /// Starts a killed or stopped server again (same ports and store).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].spawn();
        wait_for_port(self.nodes[i].client_port, 20, "nats-server");
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A tiny HTTP GET on loopback (the monitoring endpoint), without an HTTP client dependency.
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}
