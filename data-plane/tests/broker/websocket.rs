//! The WebSocket listener's handshake (docs/spec.md 3.1): `/mqtt` upgrades and echoes the `mqtt`
//! subprotocol; other paths are refused. MQTT over it is exercised by the paho test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::*;

pub(crate) fn handshake(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).to_lowercase()
}

#[test]
fn upgrade_on_mqtt_path_with_subprotocol() {
    let b = BrokerProc::start(&snapshot());
    let ok = handshake(b.ws_port, "/mqtt");
    assert!(ok.starts_with("http/1.1 101"), "{ok}");
    assert!(ok.contains("sec-websocket-protocol: mqtt"), "{ok}");
    assert!(
        ok.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{ok}"
    );
    let refused = handshake(b.ws_port, "/other");
    assert!(!refused.starts_with("http/1.1 101"), "{refused}");
}
