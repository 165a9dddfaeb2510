//! Loopback ports and readiness waits for tests that start real processes.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Ports handed to servers come from below the kernel's ephemeral range (32768-60999 on Linux), so
/// the many outgoing client connections of a test run can never take one between our check and the
/// server's bind; a random start keeps parallel test processes apart.
const SERVER_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port handed out stays reserved for this long, across test processes: between our check and
/// the server's bind another test could otherwise be handed the same free port (seen in CI runs).
const RESERVATION: Duration = Duration::from_secs(600);

/// A loopback port that is free now and handed to no other test process for the next ten minutes,
/// for a process that binds it right after.
pub fn free_port() -> u16 {
    let span = SERVER_PORTS.end - SERVER_PORTS.start;
    let start = std::process::id().wrapping_mul(7919).wrapping_add(nanos()) % span as u32;
    for i in 0..span as u32 {
        let port = SERVER_PORTS.start + ((start + i * 131) % span as u32) as u16;
        if reserve(port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {SERVER_PORTS:?}");
}

/// Claims `port` for this process with a marker file that only one process can create; a marker
/// older than `RESERVATION` is stale and taken over.
fn reserve(port: u16) -> bool {
    let dir = std::env::temp_dir().join("mqtt-service-test-ports");
    if std::fs::create_dir_all(&dir).is_err() {
        return true; // no shared directory: fall back to the bind check alone
    }
    let marker = dir.join(port.to_string());
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
            .is_ok()
    };
    if create() {
        return true;
    }
    let stale = std::fs::metadata(&marker)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > RESERVATION);
    // Two processes may both see it stale: only the one whose create succeeds after removal wins.
    stale && std::fs::remove_file(&marker).is_ok() && create()
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Waits until something accepts TCP connections on `port`, or panics after `secs` naming `what`.
pub fn wait_for_port(port: u16, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within {secs} s");
}
