//! MQTT packets of either version written by hand, byte by byte (for `raw::Raw` and for frames a
//! codec would refuse to write), and the framing of what comes back.

use bytes::BytesMut;

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

/// Reads an MQTT variable byte integer at the start of `bytes`: its value and how many bytes it
/// took (None when `bytes` ends first).
pub fn read_len(bytes: &[u8]) -> Option<(usize, usize)> {
    let (mut len, mut shift) = (0usize, 0);
    for (i, b) in bytes.iter().enumerate().take(4) {
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Some((len, i + 1));
        }
    }
    assert!(bytes.len() < 4, "malformed variable byte integer: {:?}", &bytes[..4]);
    None
}

/// Takes the first whole packet off `buf` as (first byte, body); None until one has arrived.
pub fn split_frame(buf: &mut BytesMut) -> Option<(u8, Vec<u8>)> {
    let (len, used) = read_len(buf.get(1..)?)?;
    if buf.len() < 1 + used + len {
        return None;
    }
    let frame = buf.split_to(1 + used + len);
    Some((frame[0], frame[1 + used..].to_vec()))
}

/// SUBACK and UNSUBACK packet types.
pub const SUBACK: u8 = 9;
pub const UNSUBACK: u8 = 11;
