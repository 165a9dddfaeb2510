//! What brokers send each other over NATS: a routed message is the stored-message encoding
//! (`store::codec`) of the message behind its sender's ID and sequence (so that the receiving
//! broker can hand one sender's messages over in the order they were sent); deliveries and inbox
//! notices for one node's clients travel as items, several in one NATS message behind the same
//! sender's ID and sequence; a takeover request carries its subject matter in headers.

use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::{BufMut, Bytes};

use crate::core::mailbox::Outbound;
use crate::message::Message;
use crate::store::codec::{self, Delivery};

pub const OP: &str = "Mq-Op";
pub const INSTANCE: &str = "Mq-Instance";
pub const CLIENT: &str = "Mq-Client";

/// What a message to one node is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Items for the node's clients (`encode_item`), one after the other, behind their origin.
    SequencedItems,
    /// Items without an origin, from a broker of an earlier release.
    Items,
    /// Another broker took this client over: close it here.
    TakeOver,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::SequencedItems => "seq-items",
            Self::Items => "items",
            Self::TakeOver => "takeover",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "seq-items" => Some(Self::SequencedItems),
            "items" => Some(Self::Items),
            "takeover" => Some(Self::TakeOver),
            _ => None,
        }
    }
}

/// What an item brings one client of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A live delivery (P2P to a clean session, or QoS 0).
    Deliver = 1,
    /// A persistent session has a new message in its inbox at this stream sequence (body included).
    Inbox = 2,
}

/// One item of a node's message, read back.
pub struct Item<'a> {
    pub kind: ItemKind,
    pub instance: &'a str,
    pub client: &'a str,
    /// The stream sequence of an inbox item (0 for a delivery).
    pub seq: u64,
    pub out: Outbound,
}

/// Tag of a routed message: the sending broker's ID and sequence follow, then the message.
const ROUTED: u8 = 0xB1;
/// Tag, sender and sequence.
const ROUTED_HEAD: usize = 17;

/// Where a routed message comes from: a sending broker (an ID it drew at start) and its place in
/// what that broker sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub sender: u64,
    pub seq: u64,
}

/// A routed message with room for its origin, which `stamp_routed` fills in when it is sent.
pub fn encode_routed(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(ROUTED_HEAD + codec::encoded_len_hint(msg));
    out.push(ROUTED);
    out.extend_from_slice(&[0; ROUTED_HEAD - 1]);
    codec::encode_into(&mut out, msg, &Delivery::as_published(msg));
    out
}

/// Writes the origin into a message made by `encode_routed`.
pub fn stamp_routed(routed: &mut [u8], origin: Origin) {
    put_origin(&mut routed[1..ROUTED_HEAD], origin);
}

/// Bytes before the items of a node message: their origin, written by `stamp_items` when sent.
pub const ITEMS_HEAD: usize = 16;

pub fn stamp_items(batch: &mut [u8], origin: Origin) {
    put_origin(&mut batch[..ITEMS_HEAD], origin);
}

/// The origin of a node message of items (`Op::SequencedItems`); its items follow `ITEMS_HEAD`.
pub fn items_origin(payload: &[u8]) -> Option<Origin> {
    read_origin(payload.get(..ITEMS_HEAD)?)
}

fn put_origin(at: &mut [u8], origin: Origin) {
    at[..8].copy_from_slice(&origin.sender.to_be_bytes());
    at[8..16].copy_from_slice(&origin.seq.to_be_bytes());
}

fn read_origin(at: &[u8]) -> Option<Origin> {
    Some(Origin {
        sender: u64::from_be_bytes(at.get(..8)?.try_into().ok()?),
        seq: u64::from_be_bytes(at.get(8..16)?.try_into().ok()?),
    })
}

/// A routed message and its origin; a message from a broker of an earlier release has none.
pub fn decode_routed(payload: &[u8]) -> Option<(Option<Origin>, Message)> {
    if payload.first() != Some(&ROUTED) {
        return decode_message(payload).map(|m| (None, m));
    }
    let origin = read_origin(payload.get(1..ROUTED_HEAD)?)?;
    decode_message(&payload[ROUTED_HEAD..]).map(|m| (Some(origin), m))
}

/// A message as kept in the retained bucket.
pub fn encode_message(msg: &Message) -> Bytes {
    Bytes::from(codec::encode(msg, &Delivery::as_published(msg)))
}

/// How a delivery to one client is to be made (its QoS, RETAIN flag and subscription identifiers).
fn delivery_of(out: &Outbound) -> Delivery {
    Delivery {
        qos: out.qos,
        retain: out.retain,
        sub_ids: out.sub_ids.clone(),
    }
}

/// A delivery to one client, with its delivery settings.
pub fn encode_delivery(out: &Outbound) -> Bytes {
    Bytes::from(codec::encode(&out.msg, &delivery_of(out)))
}

/// An item for one client of a node: kind, stream sequence, instance, client ID (each with its
/// length), then the delivery's length and its stored-message encoding. Items are appended to one
/// another as they are, so a batch is their concatenation.
pub fn encode_item(kind: ItemKind, instance: &str, client: &str, seq: u64, out: &Outbound) -> Bytes {
    let mut item = Vec::with_capacity(17 + instance.len() + client.len() + codec::encoded_len_hint(&out.msg));
    item.put_u8(kind as u8);
    item.put_u64(seq);
    // Instance IDs and client IDs are short (MQTT strings at most, 65,535 bytes).
    item.put_u16(instance.len() as u16);
    item.put_slice(instance.as_bytes());
    item.put_u16(client.len() as u16);
    item.put_slice(client.as_bytes());
    // The delivery is encoded in place; its length, written before it, is filled in after.
    let len_at = item.len();
    item.put_u32(0);
    codec::encode_into(&mut item, &out.msg, &delivery_of(out));
    let len = (item.len() - len_at - 4) as u32;
    item[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    Bytes::from(item)
}

/// The items of a node's message, in order; a malformed one ends the list with `Err(())`.
pub fn decode_items(mut raw: &[u8]) -> impl Iterator<Item = Result<Item<'_>, ()>> + '_ {
    std::iter::from_fn(move || {
        if raw.is_empty() {
            return None;
        }
        let item = read_item(&mut raw);
        if item.is_none() {
            raw = &[];
        }
        Some(item.ok_or(()))
    })
}

fn read_item<'a>(raw: &mut &'a [u8]) -> Option<Item<'a>> {
    fn take<'a>(raw: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = raw.split_at_checked(n)?;
        *raw = rest;
        Some(head)
    }
    fn text<'a>(raw: &mut &'a [u8]) -> Option<&'a str> {
        let len = u16::from_be_bytes(take(raw, 2)?.try_into().ok()?);
        std::str::from_utf8(take(raw, usize::from(len))?).ok()
    }
    let kind = match take(raw, 1)?[0] {
        1 => ItemKind::Deliver,
        2 => ItemKind::Inbox,
        _ => return None,
    };
    let seq = u64::from_be_bytes(take(raw, 8)?.try_into().ok()?);
    let instance = text(raw)?;
    let client = text(raw)?;
    let len = u32::from_be_bytes(take(raw, 4)?.try_into().ok()?);
    let out = decode_delivery(take(raw, usize::try_from(len).ok()?)?)?;
    Some(Item {
        kind,
        instance,
        client,
        seq,
        out,
    })
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

/// Headers of a node message of items.
pub fn items_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(OP, Op::SequencedItems.as_str());
    h
}

/// Headers of a takeover request for one client.
pub fn takeover_headers(instance: &str, client: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(OP, Op::TakeOver.as_str());
    h.insert(INSTANCE, instance);
    h.insert(CLIENT, client);
    h
}

/// What a message to a node is.
pub fn parse_op(h: &HeaderMap) -> Option<Op> {
    Op::parse(h.get(OP)?.as_str())
}

/// (instance, client) of a takeover request.
pub fn parse_takeover(h: &HeaderMap) -> Option<(String, String)> {
    let instance = h.get(INSTANCE)?.as_str().to_string();
    let client = h.get(CLIENT)?.as_str().to_string();
    Some((instance, client))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use common::qos::QoS;

    use super::*;

    fn out(topic: &str, qos: QoS) -> Outbound {
        Outbound {
            msg: Arc::new(Message::new(
                topic,
                ntex_bytes::Bytes::from_static(b"payload"),
                qos,
                false,
            )),
            qos,
            retain: false,
            sub_ids: Vec::new(),
        }
    }

    #[test]
    fn items_of_a_batch_come_back_in_order() {
        let mut batch = BytesMut::new();
        batch.extend_from_slice(&encode_item(
            ItemKind::Deliver,
            "mqtt-a",
            "c1",
            0,
            &out("p/p2p/c1", QoS::AtMostOnce),
        ));
        batch.extend_from_slice(&encode_item(
            ItemKind::Inbox,
            "mqtt-b",
            "c2",
            42,
            &out("p/x", QoS::AtLeastOnce),
        ));
        let items: Vec<_> = decode_items(&batch).map(Result::unwrap).collect();
        assert_eq!(items.len(), 2);
        let (a, b) = (&items[0], &items[1]);
        assert_eq!(
            (a.kind, a.instance, a.client, a.seq),
            (ItemKind::Deliver, "mqtt-a", "c1", 0)
        );
        assert_eq!((&*a.out.msg.topic, a.out.qos), ("p/p2p/c1", QoS::AtMostOnce));
        assert_eq!(
            (b.kind, b.instance, b.client, b.seq),
            (ItemKind::Inbox, "mqtt-b", "c2", 42)
        );
        assert_eq!((&*b.out.msg.topic, b.out.qos), ("p/x", QoS::AtLeastOnce));
    }

    #[test]
    fn a_routed_message_carries_its_origin() {
        let msg = out("p/x", QoS::AtLeastOnce).msg;
        let mut routed = encode_routed(&msg);
        let origin = Origin {
            sender: 0x0102_0304_0506_0708,
            seq: 42,
        };
        stamp_routed(&mut routed, origin);
        let (got, back) = decode_routed(&routed).expect("decodes");
        assert_eq!(got, Some(origin));
        assert_eq!((back.id, &*back.topic, back.qos), (msg.id, "p/x", QoS::AtLeastOnce));
        assert_eq!(&back.payload[..], b"payload");

        // From a broker of an earlier release: the message alone.
        let (got, back) = decode_routed(&encode_message(&msg)).expect("decodes");
        assert_eq!((got, back.id), (None, msg.id));

        assert!(decode_routed(&routed[..ROUTED_HEAD - 1]).is_none());
    }

    #[test]
    fn a_malformed_item_ends_the_batch_after_the_good_ones() {
        let good = encode_item(ItemKind::Deliver, "mqtt-a", "c1", 0, &out("p/p2p/c1", QoS::AtLeastOnce));
        for cut in [1, 9, 12, good.len() - 1] {
            let mut batch = BytesMut::from(&good[..]);
            batch.extend_from_slice(&good[..cut]);
            let items: Vec<_> = decode_items(&batch).collect();
            assert_eq!(items.len(), 2, "cut at {cut}");
            assert!(items[0].is_ok() && items[1].is_err(), "cut at {cut}");
        }
        let mut unknown = BytesMut::from(&good[..]);
        unknown[0] = 9;
        assert!(matches!(decode_items(&unknown).collect::<Vec<_>>()[..], [Err(())]));
    }
}
