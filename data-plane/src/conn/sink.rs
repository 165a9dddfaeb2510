//! One outbound interface over our MQTT 3.1.1 writer (`wire3`) and ntex-mqtt's v5 sink:
//! deliveries with their MQTT 5 properties (v3 clients get topic, payload and flags), broker
//! notices, and closing with a reason. Packet ids come from the caller's own allocator; QoS 1 uses the non-blocking send plus
//! the ack callback, so nothing ever awaits a subscriber inside a publish handler.

use std::cell::RefCell;
use std::num::NonZeroU16;
use std::rc::Rc;

use common::qos::QoS;
use ntex_bytes::{ByteString, Bytes};
use ntex_mqtt::v5;

use super::context::OutboundAliases;
use super::wire3::Wire3;
use crate::core::mailbox::Outbound;

#[derive(Clone)]
pub enum Sink {
    V3(Rc<Wire3>),
    V5(v5::MqttSink),
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Written,
    /// Larger than the client's maximum packet size (MQTT 5): not sent, and never will be.
    TooLarge,
    /// The connection is gone.
    Closed,
}

/// What an MQTT 5 client said it accepts: its maximum packet size and topic aliases.
pub struct Receiver<'a> {
    pub max_packet_size: Option<u32>,
    pub aliases: &'a RefCell<OutboundAliases>,
}

impl Receiver<'_> {
    /// The PUBLISH as it may go to this client: None when it is larger than the client accepts;
    /// otherwise with a topic alias when one is free (the topic itself is left out once the client
    /// knows the alias). Aliases are only given to packets that are really sent.
    fn fit(
        &self,
        topic: &ByteString,
        payload_len: usize,
        make: impl Fn(ByteString) -> v5::PublishBuilder,
    ) -> Option<v5::PublishBuilder> {
        let alias = self.aliases.borrow().peek(topic);
        let b = match alias {
            Some((alias, known)) => make(if known { ByteString::new() } else { topic.clone() })
                .properties(|p| p.topic_alias = NonZeroU16::new(alias)),
            None => make(topic.clone()),
        };
        if self.max_packet_size.is_some_and(|max| b.size(payload_len) > max) {
            return None;
        }
        if alias.is_some_and(|(_, known)| !known) {
            self.aliases.borrow_mut().assign(topic);
        }
        Some(b)
    }
}

/// The MQTT 5 properties of a delivery: the message's own, what is left of its expiry interval,
/// and the identifiers of the subscriptions it matched.
fn v5_properties(out: &Outbound, now_ms: i64, p: &mut v5::codec::PublishProperties) {
    if let Some(props) = &out.msg.props {
        p.user_properties = props.user.clone();
        p.is_utf8_payload = props.utf8_payload;
        p.content_type = props.content_type.clone();
        p.response_topic = props.response_topic.clone();
        p.correlation_data = props.correlation_data.clone();
    }
    p.message_expiry_interval = out
        .msg
        .remaining_expiry_secs(now_ms)
        .and_then(|s| std::num::NonZeroU32::new(s.max(1)));
    p.subscription_ids = out.sub_ids.clone();
}

impl Sink {
    /// Waits for write capacity; false when the connection is gone.
    pub async fn ready(&self) -> bool {
        match self {
            Self::V3(s) => s.ready().await,
            Self::V5(s) => s.ready().await,
        }
    }

    pub fn is_open(&self) -> bool {
        match self {
            Self::V3(s) => s.is_open(),
            Self::V5(s) => s.is_open(),
        }
    }

    /// Registers the PUBACK callback: (packet id, connection lost).
    pub fn on_ack(&self, f: impl Fn(u16, bool) + 'static) {
        match self {
            Self::V3(w) => w.on_ack(f),
            Self::V5(s) => s.publish_ack_cb(move |ack: v5::codec::PublishAck, lost| f(ack.packet_id.get(), lost)),
        }
    }

    /// A broker notice (`$SYS/...`, QoS 0, no subscription needed).
    pub fn send_notice(&self, topic: &'static str, payload: Bytes) -> bool {
        let topic = ByteString::from_static(topic);
        match self {
            Self::V3(w) => w.publish(topic, payload, ntex_mqtt::QoS::AtMostOnce, false, 0, false),
            Self::V5(s) => s.publish(topic).send_at_most_once(payload).is_ok(),
        }
    }

    /// Sends a QoS 0 or QoS 1 delivery (`dup`: a resend). QoS 1 must follow a successful
    /// `ready()` without an await in between.
    pub fn send(&self, out: &Outbound, id: u16, dup: bool, to: &Receiver<'_>, now_ms: i64) -> Sent {
        let payload = out.msg.payload.clone();
        let ok = match self {
            Self::V3(w) => w.publish(out.msg.topic.clone(), payload, ntex_qos(out.qos), out.retain, id, dup),
            Self::V5(s) => {
                let make = |topic| {
                    s.publish(topic)
                        .retain(out.retain)
                        .properties(|p| v5_properties(out, now_ms, p))
                };
                let Some(b) = to.fit(&out.msg.topic, payload.len(), make) else {
                    return Sent::TooLarge;
                };
                match out.qos {
                    QoS::AtMostOnce => b.send_at_most_once(payload).is_ok(),
                    _ => s.is_ready() && b.packet_id(id).dup(dup).send_at_least_once_no_block(payload).is_ok(),
                }
            }
        };
        if ok { Sent::Written } else { Sent::Closed }
    }

    /// Runs a whole QoS 2 exchange (PUBLISH, PUBREC, PUBREL, PUBCOMP); called with no other
    /// message in flight.
    pub async fn send_exactly_once(&self, out: &Outbound, id: u16, to: &Receiver<'_>, now_ms: i64) -> Sent {
        let payload = out.msg.payload.clone();
        let ok = match self {
            Self::V3(w) => w.exactly_once(out.msg.topic.clone(), payload, out.retain, id).await,
            Self::V5(s) => {
                let make = |topic| {
                    s.publish(topic)
                        .packet_id(id)
                        .retain(out.retain)
                        .properties(|p| v5_properties(out, now_ms, p))
                };
                let Some(b) = to.fit(&out.msg.topic, payload.len(), make) else {
                    return Sent::TooLarge;
                };
                match b.send_exactly_once(payload).await {
                    Ok(rec) => rec.release().await.is_ok(),
                    Err(_) => false,
                }
            }
        };
        if ok { Sent::Written } else { Sent::Closed }
    }

    pub fn close(&self) {
        match self {
            Self::V3(s) => s.close(),
            Self::V5(s) => s.close(),
        }
    }

    /// Closes the connection with a reason (v5) or plainly (v3).
    pub fn close_with(&self, reason: v5::codec::DisconnectReasonCode) {
        match self {
            Self::V3(s) => s.close(),
            Self::V5(s) => s.close_with_reason(v5::codec::Disconnect {
                reason_code: reason,
                ..Default::default()
            }),
        }
    }
}

/// The ntex-mqtt form of a QoS.
pub fn ntex_qos(qos: QoS) -> ntex_mqtt::QoS {
    match qos {
        QoS::AtMostOnce => ntex_mqtt::QoS::AtMostOnce,
        QoS::AtLeastOnce => ntex_mqtt::QoS::AtLeastOnce,
        QoS::ExactlyOnce => ntex_mqtt::QoS::ExactlyOnce,
    }
}

/// Our form of an ntex-mqtt QoS.
pub fn qos_of(qos: ntex_mqtt::QoS) -> QoS {
    match qos {
        ntex_mqtt::QoS::AtMostOnce => QoS::AtMostOnce,
        ntex_mqtt::QoS::AtLeastOnce => QoS::AtLeastOnce,
        ntex_mqtt::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}
