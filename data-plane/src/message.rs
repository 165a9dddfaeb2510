//! The one message type that carries a PUBLISH through the broker (routing, offline store, retained
//! store, wills): topic, payload, QoS, retain, the MQTT 5 properties and a message ID assigned where
//! the message was accepted.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub use common::qos::QoS;
use ntex_bytes::{ByteString, Bytes};

/// A message ID: 32 upper-case hex characters on the wire and in APIs (the form SendMessage
/// returns). Milliseconds since the epoch in the top 48 bits, a random per-process value in the next
/// 32 and a per-process counter in the last 48: unique without coordination, ordered by time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId(u128);

impl MsgId {
    pub fn new() -> Self {
        static BOOT: OnceLock<u32> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let boot = *BOOT.get_or_init(rand::random);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xFFFF_FFFF_FFFF;
        let ms = (crate::clock::now_ms().max(0) as u128) & 0xFFFF_FFFF_FFFF;
        Self((ms << 80) | (u128::from(boot) << 48) | u128::from(n))
    }

    /// Parses the 32-hex form (either case).
    pub fn parse(hex: &str) -> Option<Self> {
        (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u128::from_str_radix(hex, 16).ok().map(Self))
            .flatten()
    }

    /// When it was assigned (ms since the epoch).
    pub fn time_ms(self) -> i64 {
        (self.0 >> 80) as i64
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(bytes))
    }
}

impl Default for MsgId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032X}", self.0)
    }
}

impl fmt::Debug for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// MQTT 5 message properties that travel with the message to every subscriber.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// In the order the publisher sent them (MQTT 5, 3.3.2.3.7).
    pub user: Vec<(ByteString, ByteString)>,
    /// Payload format indicator 1: UTF-8 text.
    pub utf8_payload: bool,
    pub content_type: Option<ByteString>,
    pub response_topic: Option<ByteString>,
    pub correlation_data: Option<Bytes>,
    /// Absolute end of the message expiry interval (ms since the epoch): after it the message is
    /// not delivered, and subscribers are sent what is left of the interval. Set by `deadline`, on
    /// `clock::now_ms`; what is left must be read on that clock too (the precise clock runs up to a
    /// tick ahead: a deadline set on it and read on the coarse one told a subscriber 101 s of 100).
    pub expires_at_ms: Option<i64>,
}

impl Properties {
    /// The end of an expiry interval of `secs` that starts now.
    pub fn deadline(secs: u32) -> i64 {
        crate::clock::now_ms() + i64::from(secs) * 1000
    }
}

impl Properties {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// An application message on its way to subscribers.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: MsgId,
    pub topic: ByteString,
    pub payload: Bytes,
    /// The QoS it was published with; each subscriber gets min(this, its subscription's).
    pub qos: QoS,
    /// The RETAIN flag as published.
    pub retain: bool,
    /// Client ID of the publisher; empty for messages from the backend (SendMessage).
    pub publisher: ByteString,
    /// None for messages without MQTT 5 properties (all v3.1.1 traffic): one pointer, no allocation.
    pub props: Option<Box<Properties>>,
}

impl Message {
    /// A message without MQTT 5 properties, with a fresh ID.
    pub fn new(topic: impl Into<ByteString>, payload: Bytes, qos: QoS, retain: bool) -> Self {
        Self {
            id: MsgId::new(),
            topic: topic.into(),
            payload,
            qos,
            retain,
            publisher: ByteString::new(),
            props: None,
        }
    }

    /// A message built from a packet's topic and payload, both copied: a slice would keep the
    /// connection's whole read buffer alive for as long as the message lives (a will does).
    pub fn copied(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Self {
        Self::new(topic.to_owned(), Bytes::copy_from_slice(payload), qos, retain)
    }

    pub fn published_by(mut self, client_id: ByteString) -> Self {
        self.publisher = client_id;
        self
    }

    pub fn with_props(mut self, props: Properties) -> Self {
        self.props = (!props.is_empty()).then(|| Box::new(props));
        self
    }

    /// Past its message expiry interval at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms().is_some_and(|at| at <= now_ms)
    }

    pub fn expires_at_ms(&self) -> Option<i64> {
        self.props.as_ref().and_then(|p| p.expires_at_ms)
    }

    /// Seconds of the expiry interval left at `now_ms`, rounded up (what a subscriber is sent).
    pub fn remaining_expiry_secs(&self, now_ms: i64) -> Option<u32> {
        self.expires_at_ms()
            .map(|at| ((at - now_ms).max(0) as u64).div_ceil(1000).min(u64::from(u32::MAX)) as u32)
    }

    /// A copy whose topic and payload own their bytes: a slice of a connection's read buffer would
    /// keep that whole buffer alive as long as a retained or queued message lives.
    pub fn detached(&self) -> Self {
        Self {
            topic: ByteString::from(self.topic.as_str().to_owned()),
            payload: Bytes::copy_from_slice(&self.payload),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_upper_hex_unique_and_round_trip() {
        let (a, b) = (MsgId::new(), MsgId::new());
        assert_ne!(a, b);
        assert!(a < b, "ordered by creation");
        let text = a.to_string();
        assert_eq!(text.len(), 32);
        assert!(text.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert_eq!(MsgId::parse(&text), Some(a));
        assert_eq!(MsgId::parse(&text.to_lowercase()), Some(a));
        assert_eq!(MsgId::from_bytes(a.to_bytes()), a);
        assert_eq!(MsgId::parse("xyz"), None);
    }

    #[test]
    fn expiry_counts_down_in_whole_seconds() {
        let m = Message::new("T/a", Bytes::new(), QoS::AtLeastOnce, false).with_props(Properties {
            expires_at_ms: Some(10_500),
            ..Properties::default()
        });
        assert_eq!(m.remaining_expiry_secs(0), Some(11));
        assert_eq!(m.remaining_expiry_secs(10_000), Some(1));
        assert!(!m.expired(10_499));
        assert!(m.expired(10_500));
        let plain = Message::new("T/a", Bytes::new(), QoS::AtMostOnce, false).with_props(Properties::default());
        assert!(plain.props.is_none(), "empty properties cost nothing");
    }
}
