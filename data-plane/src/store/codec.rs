//! The byte form of stored messages (offline queues and retained messages): a format tag, the
//! delivery (QoS, RETAIN, subscription identifiers), the message with its ID, publisher and MQTT 5
//! properties, then the payload. Records written before the tag existed (QoS, RETAIN, topic,
//! payload) are still read; they get a fresh message ID.

use std::num::NonZeroU32;

use common::qos::QoS;
use ntex_bytes::{ByteString, Bytes};

use crate::message::{Message, MsgId, Properties};

const FORMAT_V2: u8 = 0xA2;

const RETAIN: u8 = 1;
const MSG_RETAIN: u8 = 2;
const HAS_PROPS: u8 = 4;

const UTF8: u8 = 1;
const CONTENT_TYPE: u8 = 2;
const RESPONSE_TOPIC: u8 = 4;
const CORRELATION: u8 = 8;
const EXPIRY: u8 = 16;

/// How a stored message is to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub qos: QoS,
    pub retain: bool,
    pub sub_ids: Vec<NonZeroU32>,
}

impl Delivery {
    /// Delivered as it was published: its own QoS and RETAIN flag, no subscription identifiers.
    pub fn as_published(msg: &Message) -> Self {
        Self {
            qos: msg.qos,
            retain: msg.retain,
            sub_ids: Vec::new(),
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    // Topics, client IDs and property strings are MQTT strings: at most 65,535 bytes.
    let len = s.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&s[..len]);
}

/// Bytes `encode` usually needs (more with MQTT 5 properties).
pub fn encoded_len_hint(msg: &Message) -> usize {
    48 + msg.topic.len() + msg.publisher.len() + msg.payload.len()
}

pub fn encode(msg: &Message, delivery: &Delivery) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len_hint(msg));
    encode_into(&mut out, msg, delivery);
    out
}

/// Appends the encoding to `out`, for records that carry it after a header of their own.
pub fn encode_into(out: &mut Vec<u8>, msg: &Message, delivery: &Delivery) {
    out.push(FORMAT_V2);
    out.push(msg.qos.level());
    out.push(delivery.qos.level());
    let mut flags = 0;
    if delivery.retain {
        flags |= RETAIN;
    }
    if msg.retain {
        flags |= MSG_RETAIN;
    }
    if msg.props.is_some() {
        flags |= HAS_PROPS;
    }
    out.push(flags);
    out.extend_from_slice(&msg.id.to_bytes());
    let ids = &delivery.sub_ids[..delivery.sub_ids.len().min(255)];
    out.push(ids.len() as u8);
    for id in ids {
        out.extend_from_slice(&id.get().to_be_bytes());
    }
    put_str(out, msg.topic.as_bytes());
    put_str(out, msg.publisher.as_bytes());
    if let Some(p) = &msg.props {
        let mut pf = 0;
        if p.utf8_payload {
            pf |= UTF8;
        }
        if p.content_type.is_some() {
            pf |= CONTENT_TYPE;
        }
        if p.response_topic.is_some() {
            pf |= RESPONSE_TOPIC;
        }
        if p.correlation_data.is_some() {
            pf |= CORRELATION;
        }
        if p.expires_at_ms.is_some() {
            pf |= EXPIRY;
        }
        out.push(pf);
        if let Some(v) = &p.content_type {
            put_str(out, v.as_bytes());
        }
        if let Some(v) = &p.response_topic {
            put_str(out, v.as_bytes());
        }
        if let Some(v) = &p.correlation_data {
            put_str(out, v);
        }
        if let Some(at) = p.expires_at_ms {
            out.extend_from_slice(&at.to_be_bytes());
        }
        let user = &p.user[..p.user.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(user.len() as u16).to_be_bytes());
        for (k, v) in user {
            put_str(out, k.as_bytes());
            put_str(out, v.as_bytes());
        }
    }
    out.extend_from_slice(&msg.payload);
}

struct Reader<'a> {
    raw: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.raw.split_at_checked(n)?;
        self.raw = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }

    fn string(&mut self) -> Option<ByteString> {
        let text = std::str::from_utf8(self.bytes()?).ok()?;
        Some(ByteString::from(text.to_owned()))
    }

    fn qos(&mut self) -> Option<QoS> {
        QoS::try_from(self.u8()?).ok()
    }
}

/// The message and its delivery; None for a record that cannot be read.
pub fn decode(raw: &[u8]) -> Option<(Message, Delivery)> {
    if raw.first() != Some(&FORMAT_V2) {
        return decode_v1(raw);
    }
    let mut r = Reader { raw: &raw[1..] };
    let msg_qos = r.qos()?;
    let qos = r.qos()?;
    let flags = r.u8()?;
    let id = MsgId::from_bytes(r.take(16)?.try_into().ok()?);
    let n = usize::from(r.u8()?);
    let mut sub_ids = Vec::with_capacity(n);
    for _ in 0..n {
        let id = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
        sub_ids.push(NonZeroU32::new(id)?);
    }
    let topic = r.string()?;
    let publisher = r.string()?;
    let props = if flags & HAS_PROPS != 0 {
        let pf = r.u8()?;
        let mut p = Properties {
            utf8_payload: pf & UTF8 != 0,
            ..Properties::default()
        };
        if pf & CONTENT_TYPE != 0 {
            p.content_type = Some(r.string()?);
        }
        if pf & RESPONSE_TOPIC != 0 {
            p.response_topic = Some(r.string()?);
        }
        if pf & CORRELATION != 0 {
            p.correlation_data = Some(Bytes::copy_from_slice(r.bytes()?));
        }
        if pf & EXPIRY != 0 {
            p.expires_at_ms = Some(i64::from_be_bytes(r.take(8)?.try_into().ok()?));
        }
        let count = r.u16()?;
        for _ in 0..count {
            let k = r.string()?;
            let v = r.string()?;
            p.user.push((k, v));
        }
        Some(Box::new(p))
    } else {
        None
    };
    let msg = Message {
        id,
        topic,
        payload: Bytes::copy_from_slice(r.raw),
        qos: msg_qos,
        retain: flags & MSG_RETAIN != 0,
        publisher,
        props,
    };
    let delivery = Delivery {
        qos,
        retain: flags & RETAIN != 0,
        sub_ids,
    };
    Some((msg, delivery))
}

/// The first format: QoS, RETAIN, topic, payload.
fn decode_v1(raw: &[u8]) -> Option<(Message, Delivery)> {
    let mut r = Reader { raw };
    let qos = r.qos()?;
    let retain = r.u8()? != 0;
    let topic = r.string()?;
    let msg = Message::new(topic, Bytes::copy_from_slice(r.raw), qos, retain);
    let delivery = Delivery {
        qos,
        retain,
        sub_ids: Vec::new(),
    };
    Some((msg, delivery))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_every_property() {
        let props = Properties {
            user: vec![
                ("b".into(), "2".into()),
                ("a".into(), "1".into()),
                ("b".into(), "3".into()),
            ],
            utf8_payload: true,
            content_type: Some("text/plain".into()),
            response_topic: Some("T/reply".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            expires_at_ms: Some(1_700_000_000_123),
        };
        let msg = Message::new("T/a/b", Bytes::from_static(b"payload"), QoS::ExactlyOnce, true)
            .published_by("GID_x@@@pub".into())
            .with_props(props);
        let delivery = Delivery {
            qos: QoS::AtLeastOnce,
            retain: true,
            sub_ids: vec![NonZeroU32::new(7).unwrap(), NonZeroU32::new(70_000).unwrap()],
        };
        let (back, d) = decode(&encode(&msg, &delivery)).unwrap();
        assert_eq!(d, delivery);
        assert_eq!(
            (back.id, &back.topic, &back.payload, back.qos, back.retain),
            (msg.id, &msg.topic, &msg.payload, msg.qos, msg.retain)
        );
        assert_eq!((&back.publisher, &back.props), (&msg.publisher, &msg.props));
        let plain = Message::new("T", Bytes::new(), QoS::AtMostOnce, false);
        let d0 = Delivery {
            qos: QoS::AtMostOnce,
            retain: false,
            sub_ids: vec![],
        };
        let (back, _) = decode(&encode(&plain, &d0)).unwrap();
        assert!(back.props.is_none() && back.payload.is_empty());
    }

    #[test]
    fn first_format_records_are_read_and_garbage_is_refused() {
        let mut v1 = vec![1, 0, 0, 3];
        v1.extend_from_slice(b"T/a");
        v1.extend_from_slice(b"hi");
        let (msg, d) = decode(&v1).unwrap();
        assert_eq!(
            (msg.topic.as_str(), &msg.payload[..], d.qos),
            ("T/a", &b"hi"[..], QoS::AtLeastOnce)
        );
        assert!(decode(&[FORMAT_V2, 1]).is_none());
        assert!(decode(&[9, 0, 0, 1]).is_none());
        assert!(decode(&[]).is_none());
    }
}
