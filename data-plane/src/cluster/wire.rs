//! What brokers send each other over NATS: a routed message is the stored-message encoding
//! (`store::codec`) of the message; what is addressed to one node carries its kind and subject
//! matter in headers.

use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::Bytes;

use crate::core::mailbox::Outbound;
use crate::message::Message;
use crate::store::codec::{self, Delivery};

pub const OP: &str = "Mq-Op";
pub const INSTANCE: &str = "Mq-Instance";
pub const CLIENT: &str = "Mq-Client";
pub const SEQ: &str = "Mq-Seq";

/// What a message to one node is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A live delivery to one of the node's clients (P2P to a clean session, or QoS 0).
    Deliver,
    /// A persistent session of the node has a new message in its inbox (body included).
    Inbox,
    /// Another broker took this client over: close it here.
    TakeOver,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Deliver => "deliver",
            Self::Inbox => "inbox",
            Self::TakeOver => "takeover",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deliver" => Some(Self::Deliver),
            "inbox" => Some(Self::Inbox),
            "takeover" => Some(Self::TakeOver),
            _ => None,
        }
    }
}

/// A routed message, as it travels.
pub fn encode_message(msg: &Message) -> Bytes {
    let delivery = Delivery {
        qos: msg.qos,
        retain: msg.retain,
        sub_ids: Vec::new(),
    };
    Bytes::from(codec::encode(msg, &delivery))
}

/// A delivery to one client (its QoS, RETAIN flag and subscription identifiers ride along).
pub fn encode_delivery(out: &Outbound) -> Bytes {
    let delivery = Delivery {
        qos: out.qos,
        retain: out.retain,
        sub_ids: out.sub_ids.clone(),
    };
    Bytes::from(codec::encode(&out.msg, &delivery))
}

pub fn decode_message(payload: &[u8]) -> Option<Message> {
    codec::decode(payload).map(|(msg, _)| msg)
}

pub fn decode_delivery(payload: &[u8]) -> Option<Outbound> {
    codec::decode(payload).map(|(msg, d)| Outbound {
        msg: Arc::new(msg),
        qos: d.qos,
        retain: d.retain,
        sub_ids: d.sub_ids,
    })
}

/// Headers of a message to a node about one client.
pub fn node_headers(op: Op, instance: &str, client: &str, seq: Option<u64>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(OP, op.as_str());
    h.insert(INSTANCE, instance);
    h.insert(CLIENT, client);
    if let Some(seq) = seq {
        h.insert(SEQ, seq.to_string().as_str());
    }
    h
}

/// (op, instance, client, seq) of a message to a node.
pub fn parse_node_headers(h: &HeaderMap) -> Option<(Op, String, String, Option<u64>)> {
    let op = Op::parse(h.get(OP)?.as_str())?;
    let instance = h.get(INSTANCE)?.as_str().to_string();
    let client = h.get(CLIENT)?.as_str().to_string();
    let seq = h.get(SEQ).and_then(|s| s.as_str().parse().ok());
    Some((op, instance, client, seq))
}
