//! What an outbox holds and what targets send: a matched message (stored with the store's message
//! codec) or a client status event, and the bodies built from them (the JSON `Envelope`, the
//! Alibaba `StatusEvent`).

use base64::Engine;
use common::rules::{Envelope, StatusEvent};

use crate::message::Message;
use crate::store::codec::{self, Delivery};

const TAG_MESSAGE: u8 = 0;
const TAG_STATUS: u8 = 1;

/// One delivery waiting in an outbox.
#[derive(Debug, Clone)]
pub enum Item {
    Message(Message),
    Status(StatusEvent),
}

/// The outbox record of a matched message.
pub fn encode_message(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + codec::encoded_len_hint(msg));
    out.push(TAG_MESSAGE);
    codec::encode_into(&mut out, msg, &Delivery::as_published(msg));
    out
}

/// The outbox record of a status event.
pub fn encode_status(ev: &StatusEvent) -> Vec<u8> {
    let mut out = vec![TAG_STATUS];
    out.extend(serde_json::to_vec(ev).unwrap_or_default());
    out
}

impl Item {
    pub fn decode(raw: &[u8]) -> Option<Self> {
        match raw.split_first()? {
            (&TAG_MESSAGE, rest) => codec::decode(rest).map(|(msg, _)| Self::Message(msg)),
            (&TAG_STATUS, rest) => serde_json::from_slice(rest).ok().map(Self::Status),
            _ => None,
        }
    }

    /// Whose order a target keeps: the publisher's, or the client whose status changed.
    pub fn client_id(&self) -> &str {
        match self {
            Self::Message(m) => &m.publisher,
            Self::Status(ev) => &ev.client_id,
        }
    }

    pub fn msg_id(&self) -> Option<String> {
        match self {
            Self::Message(m) => Some(m.id.to_string()),
            Self::Status(_) => None,
        }
    }

    pub fn topic(&self) -> Option<&str> {
        match self {
            Self::Message(m) => Some(&m.topic),
            Self::Status(_) => None,
        }
    }

    /// The JSON body receivers get: an `Envelope` for a message, the `StatusEvent` as is.
    pub fn json_body(&self, rule_id: &str, instance_id: &str) -> Vec<u8> {
        match self {
            Self::Message(m) => serde_json::to_vec(&envelope(rule_id, instance_id, m)).unwrap_or_default(),
            Self::Status(ev) => serde_json::to_vec(ev).unwrap_or_default(),
        }
    }
}

pub fn envelope(rule_id: &str, instance_id: &str, m: &Message) -> Envelope {
    Envelope {
        rule_id: rule_id.to_string(),
        instance_id: instance_id.to_string(),
        topic: m.topic.to_string(),
        payload: base64::engine::general_purpose::STANDARD.encode(&m.payload),
        qos: m.qos.level(),
        retain: m.retain,
        client_id: m.publisher.to_string(),
        msg_id: m.id.to_string(),
        time: m.id.time_ms(),
        user_properties: user_properties(m),
    }
}

pub fn user_properties(m: &Message) -> Vec<(String, String)> {
    m.props
        .as_ref()
        .map(|p| p.user.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use ntex_bytes::{ByteString, Bytes};

    use super::*;
    use crate::message::{Properties, QoS};

    #[test]
    fn items_read_back_as_written() {
        let msg = Message::new("T/a", Bytes::from_static(b"\x00hi"), QoS::ExactlyOnce, true)
            .published_by("GID_a@@@d".into())
            .with_props(Properties {
                user: vec![(ByteString::from("k"), ByteString::from("v"))],
                ..Properties::default()
            });
        let Some(Item::Message(back)) = Item::decode(&encode_message(&msg)) else {
            panic!("a message")
        };
        assert_eq!(
            (back.id, back.topic.as_str(), &back.payload[..]),
            (msg.id, "T/a", &b"\x00hi"[..])
        );
        let env = envelope("rule-1", "mqtt-x", &back);
        assert_eq!(env.payload, "AGhp");
        assert_eq!((env.qos, env.retain, env.client_id.as_str()), (2, true, "GID_a@@@d"));
        assert_eq!(env.user_properties, vec![("k".to_string(), "v".to_string())]);
        assert_eq!(env.time, msg.id.time_ms());
        let ev = StatusEvent {
            client_id: "GID_a@@@d".into(),
            time: 1,
            event_type: "connect".into(),
            channel_id: "c".into(),
            client_ip: "1.2.3.4:5".into(),
        };
        let Some(Item::Status(back)) = Item::decode(&encode_status(&ev)) else {
            panic!("a status event")
        };
        assert_eq!(back, ev);
        assert!(Item::decode(b"\x09").is_none());
    }
}
