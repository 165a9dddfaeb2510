//! MQTT packets written and read by hand on a raw TCP socket, for what the rumqttc clients cannot
//! do: a subscriber that never reads, and SUBSCRIBE / UNSUBSCRIBE packets with many filters.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// MQTT 3.1.1 (4) or 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3 = 4,
    V5 = 5,
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends `n` as an MQTT variable byte integer (the remaining length of a fixed header).
pub fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return;
        }
    }
}

/// A packet: first byte, remaining length, body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    put_len(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

pub fn connect(v: Version, client_id: &str, user: &str, pass: &str) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, "MQTT");
    // Protocol level, flags (username, password, clean session), keep-alive 60 s.
    body.extend_from_slice(&[v as u8, 0b1100_0010, 0, 60]);
    if v == Version::V5 {
        body.push(0);
    }
    string(&mut body, client_id);
    string(&mut body, user);
    string(&mut body, pass);
    packet(0x10, &body)
}

/// SUBSCRIBE of `filters`, each at QoS `qos`.
pub fn subscribe(v: Version, id: u16, filters: &[String], qos: u8) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if v == Version::V5 {
        body.push(0);
    }
    for f in filters {
        string(&mut body, f);
        body.push(qos);
    }
    packet(0x82, &body)
}

pub fn unsubscribe(v: Version, id: u16, filters: &[String]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if v == Version::V5 {
        body.push(0);
    }
    for f in filters {
        string(&mut body, f);
    }
    packet(0xA2, &body)
}

pub fn publish_qos0(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, topic);
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

/// A connection speaking raw MQTT.
pub struct Raw {
    pub stream: TcpStream,
    pub version: Version,
}

impl Raw {
    /// Connects and checks the CONNACK accepts.
    pub async fn connect(port: u16, v: Version, client_id: &str, user: &str, pass: &str) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut raw = Self { stream, version: v };
        raw.send(&connect(v, client_id, user, pass)).await;
        let (kind, body) = raw.read().await.expect("CONNACK");
        assert_eq!(kind >> 4, 2, "CONNACK expected");
        assert_eq!(body[1], 0, "connection refused: {body:?}");
        raw
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next packet (first byte, body), or None when the broker closed the connection.
    pub async fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        let read = async {
            let first = self.stream.read_u8().await.ok()?;
            let (mut len, mut shift) = (0usize, 0);
            loop {
                let b = self.stream.read_u8().await.ok()?;
                len |= usize::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            let mut body = vec![0; len];
            self.stream.read_exact(&mut body).await.ok()?;
            Some((first, body))
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("a packet or a close within 10 s")
    }

    /// The reason codes of the next SUBACK or UNSUBACK (MQTT 3.1.1 UNSUBACK has none), skipping
    /// other packets.
    pub async fn ack_codes(&mut self, kind: u8) -> Vec<u8> {
        loop {
            let (first, body) = self.read().await.expect("the broker closed the connection");
            if first >> 4 != kind {
                continue;
            }
            let mut at = 2;
            if self.version == Version::V5 {
                // Property length (a variable byte integer) and the properties.
                let (mut len, mut shift) = (0usize, 0);
                loop {
                    let b = body[at];
                    at += 1;
                    len |= usize::from(b & 0x7f) << shift;
                    shift += 7;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                at += len;
            }
            return body[at..].to_vec();
        }
    }
}

/// SUBACK and UNSUBACK packet types.
pub const SUBACK: u8 = 9;
pub const UNSUBACK: u8 = 11;
