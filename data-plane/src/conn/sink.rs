//! One outbound interface over the v3 and v5 ntex-mqtt sinks. Packet ids come from the caller's
//! own allocator; QoS 1 uses the non-blocking send plus the ack callback, so nothing ever awaits a
//! subscriber inside a publish handler.

use std::num::NonZeroU16;

use ntex_bytes::{ByteString, Bytes};
use ntex_mqtt::{v3, v5};

#[derive(Clone)]
pub enum Sink {
    V3(v3::MqttSink),
    V5(v5::MqttSink),
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
            Self::V3(s) => s.publish_ack_cb(move |id: NonZeroU16, lost| f(id.get(), lost)),
            Self::V5(s) => s.publish_ack_cb(move |ack: v5::codec::PublishAck, lost| f(ack.packet_id.get(), lost)),
        }
    }

    pub fn send_qos0(&self, topic: &str, payload: Bytes, retain: bool) -> bool {
        let topic = ByteString::from(topic);
        match self {
            Self::V3(s) => {
                let b = s.publish(topic);
                let b = if retain { b.retain() } else { b };
                b.send_at_most_once(payload).is_ok()
            }
            Self::V5(s) => s.publish(topic).retain(retain).send_at_most_once(payload).is_ok(),
        }
    }

    /// Must follow a successful `ready()` without an await in between.
    pub fn send_qos1(&self, id: u16, dup: bool, topic: &str, payload: Bytes, retain: bool) -> bool {
        let topic = ByteString::from(topic);
        match self {
            Self::V3(s) => {
                if !s.is_ready() {
                    return false;
                }
                let b = s.publish(topic).packet_id(id).dup(dup);
                let b = if retain { b.retain() } else { b };
                b.send_at_least_once_no_block(payload).is_ok()
            }
            Self::V5(s) => {
                if !s.is_ready() {
                    return false;
                }
                s.publish(topic)
                    .packet_id(id)
                    .dup(dup)
                    .retain(retain)
                    .send_at_least_once_no_block(payload)
                    .is_ok()
            }
        }
    }

    /// Full QoS 2 exchange (PUBLISH, PUBREC, PUBREL, PUBCOMP). Called with no other message in flight.
    pub async fn send_qos2(&self, id: u16, topic: &str, payload: Bytes, retain: bool) -> bool {
        let topic = ByteString::from(topic);
        match self {
            Self::V3(s) => {
                let b = s.publish(topic).packet_id(id);
                let b = if retain { b.retain() } else { b };
                match b.send_exactly_once(payload).await {
                    Ok(rec) => rec.release().await.is_ok(),
                    Err(_) => false,
                }
            }
            Self::V5(s) => match s
                .publish(topic)
                .packet_id(id)
                .retain(retain)
                .send_exactly_once(payload)
                .await
            {
                Ok(rec) => rec.release().await.is_ok(),
                Err(_) => false,
            },
        }
    }

    pub fn close(&self) {
        match self {
            Self::V3(s) => s.close(),
            Self::V5(s) => s.close(),
        }
    }

    /// Closes the connection; v5 clients learn that another connection took over.
    pub fn close_taken_over(&self) {
        match self {
            Self::V3(s) => s.close(),
            Self::V5(s) => s.close_with_reason(v5::codec::Disconnect {
                reason_code: v5::codec::DisconnectReasonCode::SessionTakenOver,
                ..Default::default()
            }),
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
