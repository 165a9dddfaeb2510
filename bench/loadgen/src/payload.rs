//! The 16-byte test payload: send time, publisher number and sequence number, so every receiver can
//! measure latency and detect loss, duplicates and reordering without coordination.

use std::sync::OnceLock;
use std::time::Instant;

pub const LEN: usize = 16;

static BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process's first call; publishers and subscribers share the process clock.
pub fn now_ns() -> u64 {
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

pub fn encode(publisher: u32, seq: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(LEN);
    p.extend_from_slice(&now_ns().to_be_bytes());
    p.extend_from_slice(&publisher.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p
}

/// (sent_ns, publisher, seq), or None for a payload that is not ours.
pub fn decode(p: &[u8]) -> Option<(u64, u32, u32)> {
    if p.len() != LEN {
        return None;
    }
    let sent = u64::from_be_bytes(p[0..8].try_into().ok()?);
    let publisher = u32::from_be_bytes(p[8..12].try_into().ok()?);
    let seq = u32::from_be_bytes(p[12..16].try_into().ok()?);
    Some((sent, publisher, seq))
}
